//! WASIp3 `wasi:http` services (component-model async): one instance takes up to
//! `max_inputs` requests at once, like a Modal container with `@concurrent`. Each
//! instance is a worker task that owns its store and runs its event loop
//! (`Store::run_concurrent`) for as long as it lives, so the guest keeps streaming
//! request and response bodies after `handle` returned. Requests go to the first
//! instance with a free input; a new instance starts only when every one is full (or, under
//! load, every one on the request's serving thread: see `workers`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::OptionFuture;
use futures_util::stream::FuturesUnordered;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};
use wasmtime::AsContextMut;
use wasmtime::component::Accessor;
use wasmtime_wasi_http::handler::{self, ExpirationError, Proxy};
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::ahead::ReadAhead;
use super::error::{InstantiateError, NoResponse, Trap};
use super::reply::ProxyBody;
use super::state::InstanceState;
use super::workers::{Fresh, Worker, Workers};
use super::world::Prepared;
use super::{CallError, EndpointSpec, Engine, LoadedComponent, classify, forward_output};

/// Requests one instance takes at once when neither the app nor the host says.
pub const DEFAULT_MAX_INPUTS: usize = 16;

/// What a worker answers for one request: the response head (its body streams on), or
/// why there is none.
type Answer = Result<hyper::Response<WasiBody>, Unanswered>;

/// Why a worker gave a request no response.
enum Unanswered {
    /// The call failed.
    Failed(CallError),
    /// The instance stopped before the request reached it (it failed or went idle as
    /// the request was queued): it goes to another instance.
    NotStarted(Box<hyper::Request<WasiBody>>),
}

/// Times a request is handed to an instance before it gives up.
const ATTEMPTS: usize = 3;

/// One request handed to a worker.
pub(crate) struct Job {
    request: hyper::Request<WasiBody>,
    answer: oneshot::Sender<Answer>,
}

/// The live instances of every service endpoint of one component.
pub(crate) type ServicePool = Workers<Job>;

/// What the task running one instance works with; it holds its component only while
/// the instance starts.
struct Instance {
    component: Weak<LoadedComponent>,
    pool: Arc<ServicePool>,
    app: String,
    spec: EndpointSpec,
    worker: Arc<Worker<Job>>,
}

impl Engine {
    /// Requests one instance of `spec` takes at once: the app's `max_inputs`, else the
    /// host's, else [`DEFAULT_MAX_INPUTS`]; 1 with per-request isolation.
    pub fn max_inputs(&self, spec: &EndpointSpec) -> usize {
        if self.single_use(spec) {
            return 1;
        }
        spec.scaling
            .max_inputs
            .map(|n| n as usize)
            .or(self.config.max_inputs)
            .unwrap_or(DEFAULT_MAX_INPUTS)
            .max(1)
    }

    pub(super) fn single_use(&self, spec: &EndpointSpec) -> bool {
        self.config.isolation == Some(super::IsolationSetting::PerRequest)
            || spec.scaling.per_request
            || spec.gpu.is_some()
    }

    /// Serves one request through a WASIp3 `wasi:http/handler` service on an instance
    /// with a free input. Returns once the guest produced the response head; the body
    /// streams from the instance's event loop.
    pub(super) async fn service(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        request: hyper::Request<WasiBody>,
    ) -> Result<hyper::Response<ProxyBody>, CallError> {
        let limits = self.limits_for(spec);
        let mut request = request;
        for _ in 0..ATTEMPTS {
            let (input, fresh) = component.services.reserve(
                &spec.name,
                self.max_inputs(spec),
                self.single_use(spec),
            );
            if let Some(jobs) = fresh {
                self.start_service(component, spec, (input.worker().clone(), jobs));
            }
            let (answer, answered) = oneshot::channel();
            if let Err(refused) = input.worker().jobs.send(Job { request, answer }) {
                request = refused.0.request;
                continue;
            }
            // The worker bounds each request by its timeout; this outer one only guards
            // against an event loop that a guest holds without yielding.
            let outcome = tokio::time::timeout(limits.timeout + super::TICK * 100, answered).await;
            return match outcome {
                Err(_) => Err(CallError::Timeout(limits.timeout)),
                Ok(Err(_)) => Err(input.worker().failure().await),
                Ok(Ok(Err(Unanswered::Failed(e)))) => Err(e),
                Ok(Ok(Err(Unanswered::NotStarted(again)))) => {
                    request = *again;
                    continue;
                }
                Ok(Ok(Ok(response))) => {
                    // The input is held until the body is sent.
                    let response = ReadAhead::response(response, input).await;
                    Ok(response.map(|body| ProxyBody::new(body.boxed_unsync(), None)))
                }
            };
        }
        Err(InstantiateError::Restarts(ATTEMPTS).into())
    }

    /// Starts the task of a new service instance.
    pub(super) fn start_service(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        (worker, jobs): Fresh<Job>,
    ) {
        let instance = Instance {
            component: Arc::downgrade(component),
            pool: component.services.clone(),
            app: component.manifest.app.clone(),
            spec: spec.clone(),
            worker,
        };
        let engine = self.clone();
        tokio::spawn(async move { engine.work(instance, jobs).await });
    }

    /// Runs one instance: starts it, then takes requests until it is idle past the
    /// scale-down window, fails, or (single-use) served its one request.
    async fn work(&self, instance: Instance, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let names = (instance.app.as_str(), instance.spec.name.as_str());
        let worker = &instance.worker;
        let ended = match self.run_worker(&instance, &mut jobs).await {
            Ok(()) => CallError::Trap(Trap::Ended),
            Err(e) => {
                tracing::warn!(
                    app = names.0,
                    function = names.1,
                    "a wasi:http service instance failed: {e}"
                );
                e
            }
        };
        instance.pool.close(worker);
        // Requests queued behind an instance that never started share its fate; those
        // behind one that ran go to another instance.
        let never_started = matches!(ended, CallError::Instantiate(_));
        worker.ended.send_replace(Some(ended.clone()));
        jobs.close();
        while let Ok(Job { request, answer }) = jobs.try_recv() {
            let _ = answer.send(Err(match never_started {
                true => Unanswered::Failed(ended.clone()),
                false => Unanswered::NotStarted(Box::new(request)),
            }));
        }
    }

    async fn run_worker(
        &self,
        instance: &Instance,
        jobs: &mut mpsc::UnboundedReceiver<Job>,
    ) -> Result<(), CallError> {
        let Instance {
            pool, spec, worker, ..
        } = instance;
        let limits = self.limits_for(spec);
        // The component is held only while its instance starts, so an app replaced or
        // stopped meanwhile is freed and tells its workers to end.
        let (mut live, proxy) = {
            let Some(component) = instance.component.upgrade() else {
                return Err(InstantiateError::Stopped.into());
            };
            let code = self.code(&component).await?;
            let Prepared::Service(exports) = &**code else {
                return Err(CallError::MissingExport("wasi:http@0.3 handler"));
            };
            let gpu = self.gpu_for(spec);
            let mut live = self
                .start(
                    &component,
                    &code,
                    &spec.name,
                    limits,
                    component.context(),
                    gpu,
                )
                .await?;
            let service = exports
                .indices
                .load(&mut live.store, &live.instance)
                .map_err(InstantiateError::from)?;
            (live, Proxy::P3(service))
        };
        let window = spec
            .scaling
            .scaledown_window
            .unwrap_or(self.config.scaledown_window);
        let keep = self.min_containers(spec);
        let names = (instance.app.as_str(), spec.name.as_str());
        let outcome = live
            .store
            .run_concurrent(async |accessor| {
                let mut calls = FuturesUnordered::new();
                let mut retiring = worker.closed.load(Ordering::Acquire);
                let mut taken = 0usize;
                // One waiter for the whole loop: a waiter made on every turn (each request
                // turns it at least twice) took the `Notify`'s lock to join its list and
                // again to leave it.
                let mut stop = std::pin::pin!(worker.stop.notified());
                loop {
                    // Timers only when their branch can fire: each made on every turn read
                    // the clock and the runtime's handle even while requests were running.
                    let idle = calls.is_empty().then(|| {
                        tokio::time::sleep(match retiring {
                            false => window,
                            true => Duration::from_millis(10),
                        })
                    });
                    let idle = OptionFuture::from(idle);
                    tokio::select! {
                        job = jobs.recv(), if !retiring || taken == 0 => {
                            let Some(job) = job else { break };
                            taken += 1;
                            if let Some(call) = start_call(accessor, &proxy, job, limits) {
                                calls.push(call);
                            }
                        }
                        Some((ran, result, answer)) = calls.next(), if !calls.is_empty() => {
                            let answered = accessor.with(|mut store| {
                                let state = store.data_mut();
                                let answered = result.map_err(|e| answer_error(e, state, limits));
                                forward_output(names.0, names.1, state);
                                answered
                            });
                            ran?;
                            // A trap or an expired request leaves the instance in doubt:
                            // it takes no more requests and ends once the others are done.
                            if let Err(e) = &answered
                                && !matches!(e, CallError::NoResponse(_))
                            {
                                retiring = true;
                                pool.close(worker);
                            }
                            let _ = answer.send(answered.map_err(Unanswered::Failed));
                        }
                        _ = stop.as_mut(), if !retiring => retiring = true,
                        Some(()) = idle, if calls.is_empty() => {
                            // Single-use or failing: go once the last body is sent.
                            if retiring && worker.in_flight.load(Ordering::Acquire) == 0 {
                                break;
                            }
                            if !retiring && pool.close_if_idle(worker, keep) {
                                break;
                            }
                        }
                    }
                    if worker.closed.load(Ordering::Acquire) {
                        retiring = true;
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
}

/// What a request's call ends with: whether it ran to an answer (false: it expired),
/// the answer, and where to send it.
type Finished = (
    wasmtime::Result<bool>,
    wasmtime::Result<hyper::Response<WasiBody>>,
    oneshot::Sender<Answer>,
);

/// Starts `job` as a new guest task of `proxy`'s instance; the returned future ends with
/// its answer or its expiry. None when it could not start (the job was answered).
fn start_call<'a>(
    accessor: &'a Accessor<InstanceState>,
    proxy: &'a Proxy,
    Job { request, answer }: Job,
    limits: super::Limits,
) -> Option<impl Future<Output = Finished> + 'a> {
    let (tx, rx) = futures_channel::oneshot::channel();
    let deadline = Instant::now() + limits.timeout;
    let prepared = accessor.with(|mut store| {
        // The store traps once the latest request is past its limit: a guest spinning
        // there is stopped even if the event loop never gets to the per-request timer.
        let state = store.data_mut();
        state.deadline = state.deadline.max(deadline);
        // A new task's epoch deadline counts from now (see `Engine::run`).
        store.as_context_mut().set_epoch_deadline(1);
        handler::Prepared::new(
            store.as_context_mut(),
            proxy,
            request,
            <InstanceState as WasiHttpView>::http,
            tx,
        )
    });
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            let failed = CallError::from(InstantiateError::from(e));
            let _ = answer.send(Err(Unanswered::Failed(failed)));
            return None;
        }
    };
    Some(async move {
        let expiry = tokio::time::sleep(limits.timeout);
        let ran = prepared.run(accessor, expiry).await;
        let result = match rx.await {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Error::new(NoResponse::Unanswered)),
        };
        (ran, result, answer)
    })
}

/// Why a request got no response: the guest's `error-code` (its instance is fine), or a
/// trap or expiry, which leave the instance in doubt.
fn answer_error(e: wasmtime::Error, state: &InstanceState, limits: super::Limits) -> CallError {
    if e.downcast_ref::<ExpirationError>().is_some() {
        return CallError::Timeout(limits.timeout);
    }
    if let Some(code) = e.downcast_ref::<ErrorCode>() {
        return NoResponse::ErrorCodeP3(Box::new(code.clone())).into();
    }
    if let Some(unanswered) = e.downcast_ref::<NoResponse>() {
        return unanswered.clone().into();
    }
    classify(e, state, limits)
}
