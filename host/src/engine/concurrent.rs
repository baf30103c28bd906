//! Typed endpoints of guests with async handlers (the SDK's `async` feature,
//! component-model async): one instance takes up to `max_inputs` requests at once, like a
//! Modal container with `@concurrent`, so a handler that awaits I/O leaves room for the
//! others. Each instance is a worker task that owns its store and runs its event loop
//! (`Store::run_concurrent`) while it lives; requests go to the first instance with a free
//! input, and a new instance starts only when every one is full.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};

use super::bindings::{Request, Response};
use super::workers::{Fresh, Input, Worker, Workers};
use super::world::Prepared;
use super::{CallError, EndpointSpec, Engine, LoadedComponent, classify, forward_output};

/// Times a request is handed to an instance before it gives up.
const ATTEMPTS: usize = 3;

/// What a worker answers for one request.
enum Answer {
    /// The guest's response, or why there is none.
    Done(Result<Response, CallError>),
    /// The instance stopped before the request reached it: it goes to another one.
    NotStarted(Request),
}

/// The loaded `endpoint-handler-async` export of one instance.
type AsyncHandler = super::bindings::exports::wasmhost::guest::endpoint_handler_async::Guest;

/// One request handed to a worker, holding its input until it is answered.
pub(crate) struct Job {
    request: Request,
    answer: oneshot::Sender<Answer>,
    _input: Input<Job>,
}

/// The live instances of every async typed endpoint of one component.
pub(crate) type TypedPool = Workers<Job>;

/// What the task running one instance works with; it holds its component only while
/// the instance starts.
struct Instance {
    component: Weak<LoadedComponent>,
    pool: Arc<TypedPool>,
    app: String,
    spec: EndpointSpec,
    worker: Arc<Worker<Job>>,
}

impl Engine {
    /// Whether `component`'s typed endpoints are served by its async handler export.
    pub(super) fn serves_async(&self, component: &LoadedComponent) -> bool {
        matches!(&component.prepared, Prepared::Guest(g) if g.handler_async.is_some())
    }

    /// Serves one request of a typed endpoint through the async handler, on an instance
    /// of `spec` with a free input.
    pub(super) async fn handle_concurrently(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        request: Request,
    ) -> Result<Response, CallError> {
        let limits = self.limits_for(spec);
        let mut request = request;
        for _ in 0..ATTEMPTS {
            let (input, fresh) =
                component
                    .typed
                    .reserve(&spec.name, self.max_inputs(spec), self.single_use(spec));
            let worker = input.worker().clone();
            if let Some(jobs) = fresh {
                self.start_typed(component, spec, (worker.clone(), jobs));
            }
            let (answer, answered) = oneshot::channel();
            let job = Job {
                request,
                answer,
                _input: input,
            };
            if let Err(refused) = worker.jobs.send(job) {
                request = refused.0.request;
                continue;
            }
            // The worker bounds each call by its timeout; this outer one only guards
            // against an event loop that a guest holds without yielding.
            let outcome = tokio::time::timeout(limits.timeout + super::TICK * 100, answered).await;
            return match outcome {
                Err(_) => Err(CallError::Timeout(limits.timeout)),
                // The instance failed (a trap ends its event loop): say why.
                Ok(Err(_)) => Err(worker.failure().await),
                Ok(Ok(Answer::Done(result))) => result,
                Ok(Ok(Answer::NotStarted(again))) => {
                    request = again;
                    continue;
                }
            };
        }
        Err(CallError::Instantiate(format!(
            "{ATTEMPTS} instances in a row stopped before taking the request"
        )))
    }

    /// Starts the task of a new instance of an async typed endpoint.
    pub(super) fn start_typed(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        (worker, jobs): Fresh<Job>,
    ) {
        let instance = Instance {
            component: Arc::downgrade(component),
            pool: component.typed.clone(),
            app: component.manifest.app.clone(),
            spec: spec.clone(),
            worker,
        };
        let engine = self.clone();
        tokio::spawn(async move { engine.work_typed(instance, jobs).await });
    }

    /// Runs one instance until it is idle past the scale-down window, fails, or
    /// (single-use) served its one request; requests left in its queue go elsewhere.
    async fn work_typed(&self, instance: Instance, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let names = (instance.app.as_str(), instance.spec.name.as_str());
        let ended = self.run_typed(&instance, &mut jobs).await;
        instance.pool.close(&instance.worker);
        // Its store is gone: waiters (eviction) learn that its slot is free.
        let reason = match &ended {
            Err(e) => e.clone(),
            Ok(()) => CallError::Trap("the instance ended before it answered".into()),
        };
        instance.worker.ended.send_replace(Some(reason));
        jobs.close();
        if let Err(e) = &ended {
            tracing::warn!(
                app = names.0,
                function = names.1,
                "an async guest instance failed: {e}"
            );
        }
        // Requests queued behind an instance that never started share its fate; those
        // behind one that ran go to another instance.
        let failed_start = match ended {
            Err(e @ CallError::Instantiate(_)) => Some(e),
            _ => None,
        };
        while let Ok(job) = jobs.try_recv() {
            let answer = match &failed_start {
                Some(e) => Answer::Done(Err(e.clone())),
                None => Answer::NotStarted(job.request),
            };
            let _ = job.answer.send(answer);
        }
    }

    async fn run_typed(
        &self,
        instance: &Instance,
        jobs: &mut mpsc::UnboundedReceiver<Job>,
    ) -> Result<(), CallError> {
        let Instance {
            pool, spec, worker, ..
        } = instance;
        let limits = self.limits_for(spec);
        let (mut live, handler) = self.open_typed(instance, limits).await?;
        let window = spec
            .scaling
            .scaledown_window
            .unwrap_or(self.config.scaledown_window);
        let keep = self.min_containers(spec);
        // A single-use instance is closed from the start but still takes its one request.
        let single_use = self.single_use(spec);
        let names = (instance.app.as_str(), spec.name.as_str());
        let outcome = live
            .store
            .run_concurrent(async |accessor| {
                let mut calls = FuturesUnordered::new();
                let mut retiring = worker.closed.load(Ordering::Acquire);
                let mut awaiting_first = single_use;
                loop {
                    // Checked first: a closed instance with nothing to do has no branch
                    // left to wait on.
                    if worker.closed.load(Ordering::Acquire) {
                        retiring = true;
                    }
                    if retiring && calls.is_empty() && !awaiting_first {
                        break;
                    }
                    tokio::select! {
                        job = jobs.recv(), if !retiring || awaiting_first => {
                            let Some(job) = job else { break };
                            awaiting_first = false;
                            accessor.with(|mut store| {
                                // The store traps once the latest call is past its limit:
                                // a guest spinning there is stopped by the epoch.
                                let state = store.data_mut();
                                state.deadline = state.deadline.max(Instant::now() + limits.timeout);
                                state.limiter.refused = false;
                            });
                            let Job { request, answer, _input } = job;
                            let call = handler.call_handle(accessor, spec.name.clone(), request);
                            calls.push(async move {
                                let outcome = tokio::time::timeout(limits.timeout, call).await;
                                (outcome, answer, _input)
                            });
                        }
                        Some((outcome, answer, input)) = calls.next(), if !calls.is_empty() => {
                            let answered = accessor.with(|mut store| {
                                let state = store.data_mut();
                                let answered = match outcome {
                                    Err(_) => Err(CallError::Timeout(limits.timeout)),
                                    Ok(Err(e)) => Err(classify(e, state, limits)),
                                    Ok(Ok(response)) => Ok(response),
                                };
                                forward_output(names.0, names.1, state);
                                answered
                            });
                            // A trap or an expired call leaves the instance in doubt: it
                            // takes no more requests and ends once the others are done.
                            if answered.is_err() {
                                retiring = true;
                                pool.close(worker);
                            }
                            drop(input);
                            let _ = answer.send(Answer::Done(answered));
                        }
                        _ = worker.stop.notified(), if !retiring => retiring = true,
                        _ = tokio::time::sleep(window), if calls.is_empty() && !retiring => {
                            if pool.close_if_idle(worker, keep) {
                                break;
                            }
                        }
                    }
                }
                wasmtime::Result::Ok(())
            })
            .await;
        let ended = outcome
            .and_then(|r| r)
            .map_err(|e| classify(e, live.store.data(), limits));
        forward_output(names.0, names.1, live.store.data());
        ended
    }

    /// Starts the instance of `instance` and loads its async handler export.
    async fn open_typed(
        &self,
        instance: &Instance,
        limits: super::Limits,
    ) -> Result<(super::pool::Live, AsyncHandler), CallError> {
        let spec = &instance.spec;
        // The component is held only while its instance starts, so an app replaced or
        // stopped meanwhile is freed and tells its workers to end.
        let Some(component) = instance.component.upgrade() else {
            return Err(CallError::Instantiate("the app was stopped".into()));
        };
        let exports = self.guest(&component)?;
        let Some(indices) = &exports.handler_async else {
            return Err(CallError::Instantiate(
                "no endpoint-handler-async export".into(),
            ));
        };
        let gpu = self.gpu_for(spec);
        let mut live = self
            .start(&component, &spec.name, limits, component.context(), gpu)
            .await?;
        let handler = indices
            .load(&mut live.store, &live.instance)
            .map_err(|e| CallError::Instantiate(format!("{e:#}")))?;
        Ok((live, handler))
    }

    /// Runs one attempt of a function through the async handler on `live`, a fresh
    /// instance: the function may await I/O.
    pub(super) async fn call_async_function(
        &self,
        live: &mut super::pool::Live,
        indices: &super::bindings::AsyncFunctionIndices,
        name: &str,
        input: &str,
        limits: super::Limits,
        names: (&str, &str),
    ) -> Result<Result<String, super::bindings::GuestCallError>, CallError> {
        let function = indices
            .load(&mut live.store, &live.instance)
            .map_err(|e| CallError::Instantiate(format!("{e:#}")))?;
        live.store.data_mut().deadline = Instant::now() + limits.timeout;
        live.store.data_mut().limiter.refused = false;
        let (name, input) = (name.to_owned(), input.to_owned());
        let call = live
            .store
            .run_concurrent(async |accessor| function.call_call(accessor, name, input).await);
        let outcome = tokio::time::timeout(limits.timeout + super::TICK * 10, call).await;
        let result = match outcome {
            Err(_) => Err(CallError::Timeout(limits.timeout)),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e)) | Err(e)) => Err(classify(e, live.store.data(), limits)),
        };
        forward_output(names.0, names.1, live.store.data());
        result
    }
}
