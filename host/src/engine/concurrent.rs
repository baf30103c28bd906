//! Typed endpoints of guests with async handlers (the SDK's `async` feature,
//! component-model async): one instance takes up to `max_inputs` requests at once, like a
//! Modal container with `@concurrent`, so a handler that awaits I/O leaves room for the
//! others. Each instance is a worker task that owns its store and runs its event loop
//! (`Store::run_concurrent`) while it lives; requests go to the first instance with a free
//! input, and a new instance starts only when every one is full (or, under load, every one
//! on the request's serving thread: see `workers`).
//!
//! Async functions run the same way, in instances of their own per function: a
//! function's secrets and volumes are the same for all its calls, so its instances start
//! with the context of the call that needed them, less the call's identity, which each
//! call passes to the guest instead (`call-context`). What the guest prints goes to the
//! log of every call of the instance in flight when it printed (a call alone in its
//! instance gets exactly its own output).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::OptionFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use wasmtime::AsContextMut;

use super::bindings::{GuestCallError, Request, Response};
use super::error::{InstantiateError, NoResponse, Trap};
use super::output::{CallsOutput, OutputSink};
use super::workers::{Fresh, Input, Worker, Workers};
use super::{
    CallContext, CallError, EndpointSpec, Engine, FunctionSpec, LoadedComponent, classify,
    follow_output, forward_output,
};

/// Times a request is handed to an instance before it gives up.
const ATTEMPTS: usize = 3;

/// What a worker answers for one job.
enum Answer {
    /// The guest's reply, or why there is none.
    Done(Result<Reply, CallError>),
    /// The instance stopped before the job reached it: it goes to another one.
    NotStarted(Work),
}

/// What the guest is asked to do.
enum Work {
    /// A request for a typed endpoint.
    Request(Request),
    /// A call of a function: its JSON input and who the call is.
    Call {
        input: String,
        context: CallIdentity,
        output: Option<Arc<dyn OutputSink>>,
    },
}

/// What the guest answered.
enum Reply {
    Response(Response),
    Value(Result<String, GuestCallError>),
}

type CallIdentity = super::bindings::exports::wasmhost::guest::function_handler_async::CallContext;

/// The loaded async exports of one instance.
enum Handler {
    Endpoint(super::bindings::exports::wasmhost::guest::endpoint_handler_async::Guest),
    Function(super::bindings::exports::wasmhost::guest::function_handler_async::Guest),
}

impl Handler {
    /// Starts `work` on this instance as call `key`; a function's call enters `outputs`.
    fn begin<'a>(
        &'a self,
        accessor: &'a wasmtime::component::Accessor<super::InstanceState>,
        name: &str,
        work: Work,
        outputs: Option<&Arc<CallsOutput>>,
        key: u64,
    ) -> futures_util::future::BoxFuture<'a, wasmtime::Result<Reply>> {
        match (self, work) {
            (Handler::Endpoint(h), Work::Request(request)) => {
                let call = h.call_handle(accessor, name.to_owned(), request);
                Box::pin(async move { call.await.map(Reply::Response) })
            }
            (
                Handler::Function(f),
                Work::Call {
                    input,
                    context,
                    output,
                },
            ) => {
                if let (Some(outputs), Some(output)) = (outputs, output) {
                    outputs.enter(key, output);
                }
                let call = f.call_call(accessor, name.to_owned(), input, context);
                Box::pin(async move { call.await.map(Reply::Value) })
            }
            _ => Box::pin(async { Err(wasmtime::format_err!("this instance serves other calls")) }),
        }
    }
}

/// One job handed to a worker, holding its input until it is answered.
pub(crate) struct Job {
    work: Work,
    answer: oneshot::Sender<Answer>,
    _input: Input<Job>,
}

/// The live instances of every async typed endpoint, or every async function, of one
/// component.
pub(crate) type TypedPool = Workers<Job>;

/// What the instances of one endpoint or function run with and under.
#[derive(Clone)]
struct Settings {
    name: String,
    limits: super::Limits,
    max_inputs: usize,
    single_use: bool,
    window: std::time::Duration,
    keep: usize,
    gpu: bool,
    /// `endpoint` or `function`, for messages.
    what: &'static str,
    /// A function's: what its instances run with (none: the component's context).
    context: Option<CallContext>,
}

/// What the task running one instance works with; it holds its component only while
/// the instance starts.
struct Instance {
    component: Weak<LoadedComponent>,
    pool: Arc<TypedPool>,
    app: String,
    settings: Settings,
    worker: Arc<Worker<Job>>,
    /// A function's: the logs of its calls in flight.
    outputs: Option<Arc<CallsOutput>>,
}

impl Engine {
    fn endpoint_settings(&self, spec: &EndpointSpec) -> Settings {
        Settings {
            name: spec.name.clone(),
            limits: self.limits_for(spec),
            max_inputs: self.max_inputs(spec),
            single_use: self.single_use(spec),
            window: spec
                .scaling
                .scaledown_window
                .unwrap_or(self.config.scaledown_window),
            keep: self.min_containers(spec),
            gpu: spec.gpu.is_some(),
            what: "endpoint",
            context: None,
        }
    }

    /// A function's: what the operator set for it (`[functions."<app>.<name>"]`:
    /// `max_inputs`, `min_containers`, `scaledown_window`, `isolation`), else the host's
    /// defaults (`--max-inputs`, else 16); one call per instance with per-request
    /// isolation or a GPU, as for endpoints.
    fn function_settings(&self, app: &str, spec: &FunctionSpec, ctx: &CallContext) -> Settings {
        let mut scaling = crate::manifest::Scaling::default();
        if let Some(over) = self
            .config
            .scaling_overrides
            .get(&format!("{app}.{}", spec.name))
        {
            over.apply(&mut scaling);
        }
        // Scaled like a typed endpoint with the same settings.
        let as_endpoint = EndpointSpec {
            name: spec.name.clone(),
            kind: super::EndpointKind::Function,
            method: "POST".into(),
            label: None,
            docs: false,
            requires_proxy_auth: false,
            custom_domains: Vec::new(),
            summary: None,
            args_schema: serde_json::Value::Null,
            result_schema: None,
            timeout: spec.timeout,
            memory_mib: spec.memory_mib,
            gpu: spec.gpu.clone(),
            allowed_outbound_hosts: spec.allowed_outbound_hosts.clone(),
            // A batch of a batched function is already one call by the time it gets here.
            batching: None,
            scaling,
        };
        let mut context = ctx.clone();
        // The identity of the call that starts an instance is not its other calls'.
        let identity = ["WASMHOST_CALL_ID", "WASMHOST_ATTEMPT"];
        context.env.retain(|(k, _)| !identity.contains(&k.as_str()));
        Settings {
            what: "function",
            context: Some(context),
            ..self.endpoint_settings(&as_endpoint)
        }
    }

    /// Serves one request of a typed endpoint through the async handler, on an instance
    /// of `spec` with a free input.
    pub(super) async fn handle_concurrently(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        request: Request,
    ) -> Result<Response, CallError> {
        let settings = self.endpoint_settings(spec);
        match self
            .dispatch(
                component,
                &component.typed,
                settings,
                Work::Request(request),
            )
            .await?
        {
            Reply::Response(response) => Ok(response),
            Reply::Value(_) => Err(NoResponse::WrongReply("call").into()),
        }
    }

    /// Runs one attempt of an async function on an instance of it with a free input;
    /// `ctx` is the attempt's context (its identity goes with the call).
    pub(super) async fn call_function_concurrently(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &FunctionSpec,
        input: &str,
        ctx: &CallContext,
    ) -> Result<Result<String, GuestCallError>, CallError> {
        let settings = self.function_settings(&component.manifest.app, spec, ctx);
        let var = |key: &str| ctx.env.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let context = CallIdentity {
            call_id: var("WASMHOST_CALL_ID").cloned().unwrap_or_default(),
            attempt: var("WASMHOST_ATTEMPT")
                .and_then(|a| a.parse().ok())
                .unwrap_or(1),
        };
        let work = Work::Call {
            input: input.to_owned(),
            context,
            output: ctx.output.clone(),
        };
        match self
            .dispatch(component, &component.functions, settings, work)
            .await?
        {
            Reply::Value(value) => Ok(value),
            Reply::Response(_) => Err(NoResponse::WrongReply("request").into()),
        }
    }

    /// Hands `work` to an instance in `pool` with a free input, starting one if none has.
    async fn dispatch(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        pool: &Arc<TypedPool>,
        settings: Settings,
        work: Work,
    ) -> Result<Reply, CallError> {
        let limits = settings.limits;
        let mut work = work;
        for _ in 0..ATTEMPTS {
            let (input, fresh) =
                pool.reserve(&settings.name, settings.max_inputs, settings.single_use);
            let worker = input.worker().clone();
            if let Some(jobs) = fresh {
                self.start_instance(component, pool, settings.clone(), (worker.clone(), jobs));
            }
            let (answer, answered) = oneshot::channel();
            let job = Job {
                work,
                answer,
                _input: input,
            };
            if let Err(refused) = worker.jobs.send(job) {
                work = refused.0.work;
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
                    work = again;
                    continue;
                }
            };
        }
        Err(InstantiateError::Restarts(ATTEMPTS).into())
    }

    /// Starts the task of a new instance of an async typed endpoint.
    pub(super) fn start_typed(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        fresh: Fresh<Job>,
    ) {
        let settings = self.endpoint_settings(spec);
        self.start_instance(component, &component.typed, settings, fresh);
    }

    fn start_instance(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        pool: &Arc<TypedPool>,
        settings: Settings,
        (worker, jobs): Fresh<Job>,
    ) {
        let outputs = settings
            .context
            .as_ref()
            .map(|_| Arc::new(CallsOutput::default()));
        let instance = Instance {
            component: Arc::downgrade(component),
            pool: pool.clone(),
            app: component.manifest.app.clone(),
            settings,
            worker,
            outputs,
        };
        let engine = self.clone();
        tokio::spawn(async move { engine.work_typed(instance, jobs).await });
    }

    /// Runs one instance until it is idle past the scale-down window, fails, or
    /// (single-use) served its one request; requests left in its queue go elsewhere.
    async fn work_typed(&self, instance: Instance, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let names = (instance.app.as_str(), instance.settings.name.as_str());
        let ended = self.run_typed(&instance, &mut jobs).await;
        instance.pool.close(&instance.worker);
        // Its store is gone: waiters (eviction) learn that its slot is free.
        let reason = match &ended {
            Err(e) => e.clone(),
            Ok(()) => CallError::Trap(Trap::Ended),
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
                None => Answer::NotStarted(job.work),
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
            pool,
            settings,
            worker,
            outputs,
            ..
        } = instance;
        let limits = settings.limits;
        let (mut live, handler) = self.open_typed(instance).await?;
        let (window, keep) = (settings.window, settings.keep);
        // A single-use instance is closed from the start but still takes its one request.
        let single_use = settings.single_use;
        let names = (instance.app.as_str(), settings.name.as_str());
        let name = &settings.name;
        let outcome = live
            .store
            .run_concurrent(async |accessor| {
                let mut calls = FuturesUnordered::new();
                let mut retiring = worker.closed.load(Ordering::Acquire);
                let mut awaiting_first = single_use;
                let mut numbered = 0u64;
                // One waiter for the whole loop, not one joining and leaving the `Notify`'s
                // list (under its lock) on every turn.
                let mut stop = std::pin::pin!(worker.stop.notified());
                loop {
                    // Checked first: a closed instance with nothing to do has no branch
                    // left to wait on.
                    if worker.closed.load(Ordering::Acquire) {
                        retiring = true;
                    }
                    if retiring && calls.is_empty() && !awaiting_first {
                        break;
                    }
                    // A timer only while idle: one made on every turn read the clock and
                    // the runtime's handle while calls ran.
                    let idle = (calls.is_empty() && !retiring).then(|| tokio::time::sleep(window));
                    let idle = OptionFuture::from(idle);
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
                                // Counts from now (see `Engine::run`).
                                store.as_context_mut().set_epoch_deadline(1);
                            });
                            let Job { work, answer, _input } = job;
                            numbered += 1;
                            let key = numbered;
                            let call = handler.begin(accessor, name, work, outputs.as_ref(), key);
                            calls.push(async move {
                                let outcome = tokio::time::timeout(limits.timeout, call).await;
                                (outcome, answer, _input, key)
                            });
                        }
                        Some((outcome, answer, input, key)) = calls.next(), if !calls.is_empty() => {
                            let answered = accessor.with(|mut store| {
                                let state = store.data_mut();
                                let answered = match outcome {
                                    Err(_) => Err(CallError::Timeout(limits.timeout)),
                                    Ok(Err(e)) => Err(classify(e, state, limits)),
                                    Ok(Ok(reply)) => Ok(reply),
                                };
                                forward_output(names.0, names.1, state);
                                answered
                            });
                            if let Some(outputs) = outputs {
                                outputs.leave(key);
                            }
                            // A trap or an expired call leaves the instance in doubt: it
                            // takes no more requests and ends once the others are done.
                            if answered.is_err() {
                                retiring = true;
                                pool.close(worker);
                            }
                            drop(input);
                            let _ = answer.send(Answer::Done(answered));
                        }
                        _ = stop.as_mut(), if !retiring => retiring = true,
                        Some(()) = idle, if calls.is_empty() && !retiring => {
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
    ) -> Result<(super::pool::Live, Handler), CallError> {
        let settings = &instance.settings;
        // The component is held only while its instance starts, so an app replaced or
        // stopped meanwhile is freed and tells its workers to end.
        let Some(component) = instance.component.upgrade() else {
            return Err(InstantiateError::Stopped.into());
        };
        let code = self.code(&component).await?;
        let exports = self.guest(&code)?;
        // A component without the export this call needs is a permanent error.
        let missing = CallError::MissingExport;
        let gpu = self.gpu_if(settings.gpu, settings.what, &settings.name);
        let mut context = settings.context.clone();
        if let (Some(ctx), Some(outputs)) = (&mut context, &instance.outputs) {
            ctx.output = Some(outputs.clone());
        }
        let ctx = context.as_ref().unwrap_or_else(|| component.context());
        let mut live = self
            .start(&component, &code, &settings.name, settings.limits, ctx, gpu)
            .await?;
        let load = |e: wasmtime::Error| CallError::from(InstantiateError::from(e));
        let handler = match &settings.context {
            None => {
                let indices = exports
                    .handler_async
                    .as_ref()
                    .ok_or_else(|| missing("endpoint-handler-async"))?;
                Handler::Endpoint(
                    indices
                        .load(&mut live.store, &live.instance)
                        .map_err(load)?,
                )
            }
            Some(_) => {
                let indices = exports
                    .function_async
                    .as_ref()
                    .ok_or_else(|| missing("function-handler-async"))?;
                // A function's lines reach its calls' logs as they are written.
                let names = (instance.app.as_str(), settings.name.as_str());
                follow_output(names, live.store.data_mut());
                Handler::Function(
                    indices
                        .load(&mut live.store, &live.instance)
                        .map_err(load)?,
                )
            }
        };
        Ok((live, handler))
    }
}
