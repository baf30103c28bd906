//! Calls into guests, one function per shape. Typed endpoints and ASGI/WSGI apps run on
//! warm instances reused like containers (fresh ones with per-request isolation), and so
//! do `wasi:http` proxies that ask for it (others get a fresh instance per request);
//! classes keep one serialised instance; functions get a fresh instance per attempt, but
//! async ones share instances like async typed endpoints (`concurrent`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre, Resource};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};

use super::ahead::ReadAhead;
use super::bindings::asgi_types::Scope;
use super::bindings::{Environ, GuestCallError, Request, Response};
use super::channel::{
    self, AsgiConnection, ChannelEntry, InputEntry, OutputEntry, WsgiInput, WsgiOutput,
};
use super::error::{InstantiateError, NoResponse, Trap};
use super::pool::Live;
use super::reply::ProxyBody;
use super::state::InstanceState;
use super::world::{GuestExports, Prepared};
use super::{
    CallContext, CallError, EndpointSpec, Engine, FunctionError, FunctionSpec, Limits,
    LoadedComponent, TICK, classify, follow_output, forward_output, report_failure,
};

/// A function's error as the guest gave it.
fn guest_error(e: GuestCallError) -> FunctionError {
    match e {
        GuestCallError::Failed(message) => FunctionError::Failed(message),
        GuestCallError::InvalidInput(detail) => FunctionError::InvalidInput(
            serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        ),
    }
}

impl Engine {
    pub(super) fn guest<'a>(&self, code: &'a Prepared) -> Result<&'a GuestExports, CallError> {
        match code {
            Prepared::Guest(g) => Ok(g),
            Prepared::Proxy(_) | Prepared::Service(_) | Prepared::Command(_) => {
                Err(CallError::MissingExport("wasmhost guest"))
            }
        }
    }

    /// The pre-linked instance of a component whose instances may be kept warm.
    fn instance_pre<'a>(
        &self,
        code: &'a Prepared,
    ) -> Result<&'a InstancePre<InstanceState>, CallError> {
        match code {
            Prepared::Guest(g) => Ok(&g.pre),
            Prepared::Proxy(p) => Ok(&p.pre),
            Prepared::Service(s) => Ok(&s.pre),
            Prepared::Command(_) => Err(InstantiateError::WebServer.into()),
        }
    }

    /// A new instance of `component` from `code`, its code loaded now; its init work runs
    /// first when it is not baked into a snapshot.
    pub(super) async fn start(
        &self,
        component: &LoadedComponent,
        code: &Arc<Prepared>,
        function: &str,
        limits: Limits,
        ctx: &CallContext,
        gpu: crate::capabilities::gpu::GpuGrant,
    ) -> Result<Live, CallError> {
        let pre = self.instance_pre(code)?;
        let outbound = self.outbound_for(component, function);
        let mut store = self.store_for(component, limits, ctx, gpu, outbound)?;
        let started = Instant::now();
        let instance = match pre.instantiate_async(&mut store).await {
            Ok(instance) => instance,
            // The pool is full: make room by retiring an idle instance, then try again.
            Err(e)
                if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some()
                    && self.make_room().await =>
            {
                // Nothing was allocated in the store: the failed attempt left it usable.
                pre.instantiate_async(&mut store)
                    .await
                    .map_err(|e| InstantiateError::AtCapacity(e.into()))?
            }
            Err(e) => return Err(InstantiateError::from(e).into()),
        };
        self.metrics
            .instantiate_seconds
            .observe(started.elapsed().as_secs_f64());
        let mut live = Live {
            store,
            instance,
            code: code.clone(),
            idle_since: Instant::now(),
            _counted: self
                .metrics
                .function_instance(&component.manifest.app, function),
            out: super::demand::HandedOut::default(),
        };
        if let (super::PreInit::EachInstance, Ok(exports)) = (component.pre_init, self.guest(code))
            && let Some(init) = &exports.init
        {
            let names = (component.manifest.app.as_str(), "init");
            self.run(&mut live, limits, names, async |store, instance| {
                init.load(&mut *store, instance)?
                    .call_initialize(&mut *store)
                    .await
            })
            .await
            .map_err(|e| Trap::Init(Box::new(e)))?;
        }
        Ok(live)
    }

    /// Runs `call` on `live` under `limits`: sets the deadline, bounds host waits with an
    /// outer timer, forwards the guest's output and classifies failures.
    pub(super) async fn run<T>(
        &self,
        live: &mut Live,
        limits: Limits,
        names: (&str, &str),
        call: impl AsyncFnOnce(&mut Store<InstanceState>, &Instance) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        let deadline = Instant::now() + limits.timeout;
        live.store.data_mut().deadline = deadline;
        // The epoch deadline counts from now: a warm instance's deadline left from its
        // last call has passed, and every call would start with a yield to the executor
        // (a fiber switch, a timer registered, the task polled again) for nothing.
        live.store.set_epoch_deadline(1);
        live.store.data_mut().limiter.refused = false;
        follow_output(names, live.store.data_mut());
        let waits = live.store.data().for_call(&self.cpu);
        // From the guest's own deadline: one clock read a call, not two.
        let outcome = tokio::time::timeout_at(
            (deadline + TICK * 10).into(),
            super::cpu::computing(waits, call(&mut live.store, &live.instance)),
        )
        .await;
        let result = match outcome {
            Err(_) => Err(CallError::Timeout(limits.timeout)),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify(e, live.store.data(), limits)),
        };
        forward_output(names.0, names.1, live.store.data());
        if let Err(e) = &result {
            report_failure(names.1, live.store.data(), e);
        }
        result
    }

    /// Runs one request through a `function` endpoint (a warm instance, or a fresh one
    /// with per-request isolation) or a class `method` (the class's warm instance,
    /// created with `enter` on first use).
    /// A batched endpoint's request joins the next batch instead.
    pub async fn handle(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        request: Request,
    ) -> Result<Response, CallError> {
        match spec.batching {
            // Boxed, as are the other uncommon paths below: an inline future is as large
            // as its largest path, and every request's future is moved a few times.
            Some(batching) if spec.kind == super::EndpointKind::Function => {
                Box::pin(self.handle_batched(component, spec, batching, request)).await
            }
            _ => self.handle_once(component, spec, request).await,
        }
    }

    /// One guest call of endpoint `spec`.
    pub(super) async fn handle_once(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        request: Request,
    ) -> Result<Response, CallError> {
        let code = self.code(component).await?;
        let exports = self.guest(&code)?;
        // A guest with async handlers takes several requests per instance.
        if spec.kind == super::EndpointKind::Function && component.serves_async {
            return Box::pin(self.handle_concurrently(component, spec, request)).await;
        }
        let handler = exports
            .handler
            .as_ref()
            .ok_or(CallError::MissingExport("endpoint-handler"))?;
        let limits = self.limits_for(spec);
        let names = (component.manifest.app.as_str(), spec.name.as_str());
        let call = async |store: &mut Store<InstanceState>, instance: &Instance| {
            let guest = super::cached(store, |c| &mut c.handler, |s| handler.load(s, instance))?;
            guest.call_handle(&mut *store, &spec.name, &request).await
        };
        if spec.kind != super::EndpointKind::Method {
            // Like a container, a warm instance serves request after request (a fresh one
            // each with per-request isolation).
            let mut live = self.checkout(component, &code, spec, limits).await?;
            let result = self.run(&mut live, limits, names, call).await;
            // An instance that failed (trapped, timed out) is never reused.
            if result.is_ok() {
                self.checkin(component, spec, live).await;
            }
            return result;
        }
        let mut slot = component.warm.class.lock().await;
        // An instance of code since evicted and loaded again cannot take this code's calls.
        let mut live = match slot.take().filter(|live| Arc::ptr_eq(&live.code, &code)) {
            Some(live) => live,
            None => {
                let gpu = self.gpu_for(spec);
                Box::pin(self.enter(component, &code, limits, names, component.context(), gpu))
                    .await?
            }
        };
        let result = self.run(&mut live, limits, names, call).await;
        // A failed call may have left the instance mid-way: start afresh next time.
        if result.is_ok() {
            *slot = Some(live);
        }
        result
    }

    /// Runs one attempt of function `spec` on a fresh instance with `ctx` (secrets,
    /// volumes, call identity); `input` is `{"args": [...], "kwargs": {...}}` and the
    /// result is JSON text. A batched function's call joins the next batch instead.
    pub async fn call_function(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &FunctionSpec,
        input: &str,
        ctx: &CallContext,
    ) -> Result<String, FunctionError> {
        match spec.batching {
            Some(batching) => {
                self.call_batched(component, spec, batching, input, ctx)
                    .await
            }
            None => self.call_function_once(component, spec, input, ctx).await,
        }
    }

    /// One guest call of function `spec`: on a fresh instance, or for an async function
    /// on one of its instances with a free input.
    pub(super) async fn call_function_once(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &FunctionSpec,
        input: &str,
        ctx: &CallContext,
    ) -> Result<String, FunctionError> {
        let code = self.code(component).await?.into_arc();
        let exports = self.guest(&code)?;
        if exports.function_async.is_some() {
            let outcome = self
                .call_function_concurrently(component, spec, input, ctx)
                .await?;
            return outcome.map_err(guest_error);
        }
        let function = exports
            .function
            .as_ref()
            .ok_or(CallError::MissingExport("function-handler"))?;
        let limits = self.function_limits(spec);
        let names = (component.manifest.app.as_str(), spec.name.as_str());
        let gpu = self.function_gpu(spec);
        let mut live = self
            .start(component, &code, &spec.name, limits, ctx, gpu)
            .await?;
        let outcome = self
            .run(&mut live, limits, names, async |store, instance| {
                function
                    .load(&mut *store, instance)?
                    .call_call(&mut *store, &spec.name, input)
                    .await
            })
            .await?;
        outcome.map_err(guest_error)
    }

    async fn enter(
        &self,
        component: &LoadedComponent,
        code: &Arc<Prepared>,
        limits: Limits,
        names: (&str, &str),
        ctx: &CallContext,
        gpu: crate::capabilities::gpu::GpuGrant,
    ) -> Result<Live, CallError> {
        let lifecycle = self
            .guest(code)?
            .lifecycle
            .as_ref()
            .ok_or(CallError::MissingExport("lifecycle"))?;
        let mut live = self
            .start(component, code, names.1, limits, ctx, gpu)
            .await?;
        let entered = self
            .run(&mut live, limits, names, async |store, instance| {
                lifecycle
                    .load(&mut *store, instance)?
                    .call_enter(&mut *store)
                    .await
            })
            .await?;
        entered.map_err(|message| Trap::Hook {
            hook: "`enter` hook",
            message,
        })?;
        Ok(live)
    }

    /// Serves one ASGI connection: `scope` and the host's end of its channel.
    pub async fn asgi(
        &self,
        component: &LoadedComponent,
        spec: &EndpointSpec,
        scope: Scope,
        connection: Box<dyn AsgiConnection>,
    ) -> Result<(), CallError> {
        let code = self.code(component).await?.into_arc();
        let asgi = self
            .guest(&code)?
            .asgi
            .as_ref()
            .ok_or(CallError::MissingExport("asgi-app"))?;
        let limits = self.limits_for(spec);
        let mut live = self.checkout(component, &code, spec, limits).await?;
        live.store.data_mut().replying(&live.out);
        let names = (component.manifest.app.as_str(), spec.name.as_str());
        let channel = live
            .store
            .data_mut()
            .table
            .push(ChannelEntry(connection))
            .map_err(InstantiateError::from)?;
        let rep = channel.rep();
        let result = self
            .run(&mut live, limits, names, async |store, instance| {
                asgi.load(&mut *store, instance)?
                    .call_handle(&mut *store, &spec.name, &scope, channel)
                    .await
            })
            .await;
        channel::release::<ChannelEntry>(live.store.data_mut(), rep);
        if result.is_ok() {
            self.checkin(component, spec, live).await;
        }
        result
    }

    /// Serves one WSGI request: its environ, body and the writer of its response.
    pub async fn wsgi(
        &self,
        component: &LoadedComponent,
        spec: &EndpointSpec,
        environ: Environ,
        input: Box<dyn WsgiInput>,
        output: Box<dyn WsgiOutput>,
    ) -> Result<(), CallError> {
        let code = self.code(component).await?;
        let wsgi = self
            .guest(&code)?
            .wsgi
            .as_ref()
            .ok_or(CallError::MissingExport("wsgi-app"))?;
        let limits = self.limits_for(spec);
        let mut live = self.checkout(component, &code, spec, limits).await?;
        live.store.data_mut().replying(&live.out);
        let names = (component.manifest.app.as_str(), spec.name.as_str());
        let table = &mut live.store.data_mut().table;
        let push_error = InstantiateError::from;
        let input: Resource<InputEntry> = table.push(InputEntry(input)).map_err(push_error)?;
        let output: Resource<OutputEntry> = table.push(OutputEntry(output)).map_err(push_error)?;
        let reps = (input.rep(), output.rep());
        let result = self
            .run(&mut live, limits, names, async |store, instance| {
                wsgi.load(&mut *store, instance)?
                    .call_handle(&mut *store, &spec.name, &environ, input, output)
                    .await
            })
            .await;
        channel::release::<InputEntry>(live.store.data_mut(), reps.0);
        channel::release::<OutputEntry>(live.store.data_mut(), reps.1);
        if result.is_ok() {
            self.checkin(component, spec, live).await;
        }
        result
    }

    /// Serves one request through a standard `wasi:http/incoming-handler` component, on a
    /// warm instance where reuse was asked for, else a fresh one. Returns once the guest
    /// has set the response head; the guest keeps running in its own task while it streams
    /// the body, still under its time limit, and its instance goes back to the pool when
    /// `handle` returned cleanly after setting the response.
    pub async fn proxy<B>(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<ProxyBody>, CallError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        if component.world == super::World::Service {
            let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
            return Box::pin(self.service(component, spec, request)).await;
        }
        let code = self.code(component).await?;
        if !matches!(**code, Prepared::Proxy(_)) {
            return Err(CallError::MissingExport("wasi:http incoming-handler"));
        }
        let limits = self.limits_for(spec);
        let mut live = self.checkout(component, &code, spec, limits).await?;
        let reply = live.store.data_mut().replying(&live.out);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let answered = Arc::new(AtomicBool::new(false));
        let set = answered.clone();
        let respond = move |response| {
            set.store(true, Ordering::Release);
            let _ = sender.send(response);
        };
        let mut http = live.store.data_mut().http();
        let setup = http
            .new_incoming_request(Scheme::Http, request)
            .and_then(|req| Ok((req, http.new_response_outparam_from_callback(respond)?)));
        let handles = setup.map_err(InstantiateError::from)?;
        let reusable = self.reusable(spec);
        // The guest's future owns what it uses, as it may move into a task of its own.
        let owned = SpecOf::of(component, spec);
        let (engine, component) = (self.clone(), component.clone());
        // Boxed: it may move into a task of its own, and the call state is several KiB.
        let guest = Box::pin(run_proxy_guest(
            engine, component, owned, live, limits, handles, answered,
        ));
        crate::anchor::keep_warm(std::mem::size_of_val(&*guest));
        let set = if reusable {
            // The guest runs in this request's task until it has set the response.
            answer_in_this_task(guest, receiver).await?
        } else {
            // A fresh instance per request: its start and teardown overlap other requests
            // best in a task of its own (in this request's task, requests/s fell ~10 %).
            answer_from_task(guest, receiver).await?
        };
        // What the guest set: its response, or the error code it chose.
        match set {
            Ok(response) => {
                // What the guest has written of its body goes with the head, in one write
                // and with a `content-length` if that is all (a guest that returned wrote
                // all of it); the rest streams.
                let response = ReadAhead::response(response, ()).await;
                Ok(response.map(|body| ProxyBody::new(body.boxed_unsync(), reply)))
            }
            Err(code) => Err(NoResponse::ErrorCode(Box::new(code)).into()),
        }
    }
}

/// Runs a `wasi:http` guest's `handle` to its end; its instance goes back to the pool
/// only if it returned cleanly after setting the response.
async fn run_proxy_guest(
    engine: Arc<Engine>,
    component: Arc<LoadedComponent>,
    owned: SpecOf,
    mut live: Live,
    limits: Limits,
    (req, out): (
        Resource<HostIncomingRequest>,
        Resource<HostResponseOutparam>,
    ),
    answered: Arc<AtomicBool>,
) -> Result<(), CallError> {
    let spec = owned.get(&component);
    let code = live.code.clone();
    let Prepared::Proxy(exports) = &*code else {
        return Err(CallError::MissingExport("wasi:http incoming-handler"));
    };
    let names = (component.manifest.app.as_str(), spec.name.as_str());
    let result = engine
        .run(&mut live, limits, names, async |store, instance| {
            let load = |s: &mut Store<InstanceState>| {
                let proxy = exports.indices.load(s, instance)?;
                Ok(proxy.wasi_http_incoming_handler().clone())
            };
            super::cached(store, |c| &mut c.proxy, load)?
                .call_handle(&mut *store, req, out)
                .await
        })
        .await;
    match &result {
        // The instance goes, and with its store the outparam the guest may still
        // hold, which ends the wait for a response: no hang until the timeout.
        Ok(()) if !answered.load(Ordering::Acquire) => {
            tracing::warn!(app = %component.manifest.app, function = %spec.name, "wasi:http guest returned without setting a response; its instance is retired")
        }
        Ok(()) => engine.checkin(&component, spec, live).await,
        Err(e) => {
            tracing::warn!(app = %component.manifest.app, function = %spec.name, "wasi:http guest failed: {e}")
        }
    }
    result
}

/// Waits for what a guest set while it runs in a task of its own.
#[inline]
async fn answer_from_task<G, T>(
    guest: Pin<Box<G>>,
    receiver: tokio::sync::oneshot::Receiver<T>,
) -> Result<T, CallError>
where
    G: Future<Output = Result<(), CallError>> + Send + 'static,
{
    let task = tokio::spawn(guest);
    match receiver.await {
        Ok(set) => Ok(set),
        // The guest finished (or failed) without setting the response.
        Err(_) => match task.await {
            Ok(ended) => Err(unanswered(ended)),
            Err(e) => Err(Trap::Task(Arc::new(e)).into()),
        },
    }
}

/// Runs a guest in this request's task until it has set the response, then moves what
/// is left of it (if anything) into a task of its own.
#[inline]
async fn answer_in_this_task<G, T>(
    mut guest: Pin<Box<G>>,
    mut receiver: tokio::sync::oneshot::Receiver<T>,
) -> Result<T, CallError>
where
    G: Future<Output = Result<(), CallError>> + Send + 'static,
{
    // Most guests have written their whole body and returned by then (it waits in the
    // body's buffer): no task, no hand-over between tasks. One still running (a body
    // that streams, work after the response) goes on in a task of its own.
    let step = std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = guest.as_mut().poll(cx) {
            return Poll::Ready(Err(result));
        }
        Pin::new(&mut receiver).poll(cx).map(Ok)
    })
    .await;
    match step {
        Ok(Ok(set)) => {
            tokio::spawn(guest);
            Ok(set)
        }
        // The outparam went without a response: how the guest ends tells why.
        Ok(Err(_)) => Err(unanswered(guest.await)),
        // Done: a response it set waits in the channel.
        Err(ended) => match receiver.try_recv() {
            Ok(set) => Ok(set),
            Err(_) => Err(unanswered(ended)),
        },
    }
}

/// The guest ended without setting a response: its error, or "not set".
#[inline]
fn unanswered(ended: Result<(), CallError>) -> CallError {
    ended.err().unwrap_or_else(|| NoResponse::NotSet.into())
}

/// An endpoint a future that owns its component refers to: one of the component's own
/// (found by index, so nothing is cloned), or a copy.
enum SpecOf {
    Manifest(usize),
    Owned(Box<EndpointSpec>),
}

impl SpecOf {
    /// The endpoint found again in its component's manifest rather than cloned (its
    /// strings and schemas are several allocations a request); a copy if it is not there.
    #[inline]
    fn of(component: &LoadedComponent, spec: &EndpointSpec) -> Self {
        let endpoints = &component.manifest.endpoints;
        match endpoints.iter().position(|e| std::ptr::eq(e, spec)) {
            Some(index) => SpecOf::Manifest(index),
            None => SpecOf::Owned(Box::new(spec.clone())),
        }
    }

    /// The endpoint, borrowed from the component or from the copy.
    fn get<'a>(&'a self, component: &'a LoadedComponent) -> &'a EndpointSpec {
        match self {
            SpecOf::Manifest(index) => &component.manifest.endpoints[*index],
            SpecOf::Owned(spec) => spec,
        }
    }
}
