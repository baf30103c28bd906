//! The wasmtime engine: validation, the native-code cache, instance creation, and the
//! time and memory bounds every guest call runs under. Knows nothing of HTTP routing.
//!
//! It serves several worlds, told apart by a component's exports (`world`): wasmhost
//! guests (`describe` plus the handlers of typed functions, class methods, ASGI and WSGI
//! apps), standard `wasi:http` proxies (WASIp2) and services (WASIp3), and `wasi:cli`
//! commands run as web servers. Calls (`calls`) use fresh instances for functions and
//! proxies (unless reuse was asked for), and warm instances for classes and apps; the
//! ASGI channel and WSGI streams are traits the shapes implement. WASIp3 services
//! (`service`) run on an engine of their own (`runtime`), several requests per instance.

mod activity;
mod ahead;
mod batch;
mod bindings;
mod cache;
mod calls;
mod channel;
mod code;
mod concurrent;
mod context;
mod cpu;
mod demand;
mod error;
#[cfg(fuzzing)]
mod fuzz;
mod idle;
mod incremental;
mod load;
mod manifest;
mod metrics;
mod output;
mod pool;
mod prime;
mod registered;
mod reply;
mod runtime;
mod service;
mod shards;
mod snapshot;
mod state;
mod thread_metrics;
mod validate;
mod web_server;
mod workers;
mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};

use crate::capabilities::CapabilitiesConfig;
pub use crate::capabilities::broker::{BrokerError, BrokerFuture, CallBroker, GuestCallState};
use crate::capabilities::gpu::{Gpu, GpuGrant};
use crate::capabilities::outbound::{Outbound, OutboundHooks};
pub use crate::capabilities::volumes::Mount;
pub use crate::manifest::{
    AppManifest, Batching, EndpointKind, EndpointSpec, FunctionSpec, IsolationSetting, RetryPolicy,
    Scaling, ScalingOverride, VolumeMount, app_name_from_stem, is_dns_label,
};
pub use ahead::ReadAhead;
pub use bindings::asgi_types as asgi;
pub use bindings::{Environ, Request, Response};
pub use cache::CacheOutcome;
pub use channel::{AsgiConnection, BoxFuture, ChannelError, WsgiInput, WsgiOutput};
pub use code::CodeBudget;
pub use context::CallContext;
pub use cpu::cores;
pub use error::{
    BatchError, CallError, DescribeError, FunctionError, InstantiateError, LoadError, NoResponse,
    PreInitError, Shared, Trap,
};
#[cfg(fuzzing)]
pub use fuzz::fuzz_manifest;
pub use load::{ComponentBytes, EarlyEngine, PreInit};
pub use manifest::ManifestError;
pub use metrics::{CallLabels, EndpointRequests, FunctionLabels, Metrics, RequestLabels};
pub use output::{OutputSink, OutputStream};
pub use reply::ProxyBody;
use state::InstanceState;
pub use validate::{HEADER_LEN, check_header};
pub use web_server::WebServer;
use world::{Prepared, World};

/// The most a component's `describe` may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the epoch advances; the granularity of timeouts and of guest yields. Short,
/// so that a request queued behind spinning guests waits for one tick, not many: a yield
/// costs a few microseconds, a 10 ms tick cost other requests 100 ms and more.
const TICK: Duration = Duration::from_millis(1);

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled native code is cached.
    pub cache_dir: PathBuf,
    /// Time limit of a call when the endpoint states none.
    pub default_timeout: Duration,
    /// Memory cap of an instance when the endpoint states none, in MiB.
    pub default_memory_mib: u32,
    /// The most instances alive at once, warm idle ones included (the pooling allocator's
    /// slots). Each slot's fiber stack gets a guard page when the engine starts, so this
    /// also bounds what a restart costs.
    pub max_instances: u32,
    /// The port a `web_server` guest listens on inside its sandbox.
    pub web_server_port: u16,
    /// How long a guest may take to start: a `web_server` to listen, `#[wasmhost::init]`
    /// work to finish.
    pub startup_timeout: Duration,
    /// Bake `#[wasmhost::init]` work into a snapshot at load (false: run it in every new
    /// instance, for comparison).
    pub pre_init_snapshots: bool,
    /// Whether warm instances serve request after request, for every app: `None` lets
    /// each component decide (wasmhost SDK shapes and components that declare reuse keep
    /// warm instances, other `wasi:http` components get a fresh one per request);
    /// `PerRequest` is Modal's per-request isolation; `Reuse` also reuses `wasi:http`
    /// components that did not declare it.
    pub isolation: Option<IsolationSetting>,
    /// Idle warm instances older than this are retired (scale to zero).
    pub scaledown_window: Duration,
    /// Warm instances kept per endpoint even when idle (Modal's min_containers).
    pub min_containers: usize,
    /// Extra idle instances kept per endpoint while it takes traffic (Modal's
    /// buffer_containers).
    pub buffer_containers: usize,
    /// Per-function scaling set by the operator, keyed `<app>.<function>`.
    pub scaling_overrides: std::collections::BTreeMap<String, ScalingOverride>,
    /// Calls of one endpoint running at once; more wait in a queue.
    pub max_concurrency: usize,
    /// Requests that may wait for an endpoint; more are refused with 503.
    pub queue_depth: usize,
    /// How long a request may wait in the queue before a 503.
    pub queue_timeout: Duration,
    /// Requests one instance takes at once where the component can take several
    /// (WASIp3 `wasi:http` services) and the app does not say; `None`: 16.
    pub max_inputs: Option<usize>,
    /// How much compiled code stays loaded; the least recently used goes first.
    pub code_budget: CodeBudget,
}

impl EngineConfig {
    /// Defaults with the given cache directory.
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            default_timeout: Duration::from_secs(300),
            default_memory_mib: 256,
            max_instances: 256,
            web_server_port: 8000,
            startup_timeout: Duration::from_secs(10),
            pre_init_snapshots: true,
            isolation: None,
            scaledown_window: Duration::from_secs(60),
            min_containers: 0,
            buffer_containers: 0,
            scaling_overrides: Default::default(),
            max_concurrency: 64,
            queue_depth: 1024,
            queue_timeout: Duration::from_secs(30),
            max_inputs: None,
            code_budget: CodeBudget::default(),
        }
    }
}

/// One wasmtime engine shared by every component the host serves.
pub struct Engine {
    /// Runs WASIp2 components and wasmhost guests.
    runtime: runtime::Runtime,
    /// Runs WASIp3 services (component-model async); made on first use.
    concurrent: std::sync::OnceLock<runtime::Runtime>,
    config: EngineConfig,
    gpu: Gpu,
    outbound: Outbound,
    /// Where plain components may send outgoing requests.
    plain_allowed_outbound_hosts: Vec<String>,
    metrics: Arc<Metrics>,
    ticker: Arc<runtime::Ticker>,
    /// The warm pools of every loaded component, for evicting idle instances when the
    /// pooling allocator is full.
    pools: pool::PoolRegistry,
    /// Instances computing for a call now, so pools scale out only when that helps.
    cpu: Arc<cpu::GuestCpu>,
    /// The components whose code is loaded, evicted past `config.code_budget`.
    resident: Arc<code::Resident>,
}

/// A validated, compiled component ready to instantiate.
pub struct LoadedComponent {
    /// What the component says it is.
    pub manifest: AppManifest,
    /// Hex sha256 of its bytes.
    pub digest: String,
    /// Whether its native code came from the cache.
    pub cache: CacheOutcome,
    /// How its `#[wasmhost::init]` work reaches its instances.
    pub pre_init: PreInit,
    /// How long loading took (read, validate, compile or map, describe).
    pub load_time: Duration,
    /// Its code, loaded on first use and evicted when others were used more recently.
    code: Arc<code::CodeSlot>,
    /// The world it targets (known without its code).
    world: World,
    /// Whether its typed endpoints are served by an async handler (known without its code).
    serves_async: bool,
    /// The wasmtime engine it was compiled for, which its stores must use.
    wasm_engine: wasmtime::Engine,
    warm: Arc<pool::WarmInstances>,
    services: Arc<service::ServicePool>,
    typed: Arc<concurrent::TypedPool>,
    /// The instances of its async functions.
    functions: Arc<concurrent::TypedPool>,
    batches: batch::FunctionBatches,
    /// The collectors of its batched endpoints.
    endpoint_batches: batch::EndpointBatches,
    web_server: web_server::WebServerSlot,
    context: std::sync::OnceLock<CallContext>,
}

impl LoadedComponent {
    /// Where `spec` is in the manifest's endpoints: found by identity (specs are borrowed
    /// from the manifest), else by name (a copy).
    pub(crate) fn endpoint_index(&self, spec: &EndpointSpec) -> Option<usize> {
        let endpoints = &self.manifest.endpoints;
        endpoints
            .iter()
            .position(|e| std::ptr::eq(e, spec))
            .or_else(|| endpoints.iter().position(|e| e.name == spec.name))
    }

    /// Sets what every instance of this component runs with (e.g. the broker that lets
    /// its guests spawn calls); the first binding wins.
    pub fn bind_context(&self, context: CallContext) {
        let _ = self.context.set(context);
    }

    fn context(&self) -> &CallContext {
        static NONE: std::sync::OnceLock<CallContext> = std::sync::OnceLock::new();
        self.context
            .get()
            .unwrap_or_else(|| NONE.get_or_init(CallContext::default))
    }
}

impl Drop for LoadedComponent {
    fn drop(&mut self) {
        // Its concurrent instances end once the requests in them are done.
        self.services.close_all();
        self.typed.close_all();
        self.functions.close_all();
    }
}

/// Time and memory bounds of one call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock limit of the call.
    pub timeout: Duration,
    /// Linear-memory cap in MiB.
    pub memory_mib: u32,
}

/// Raised from the epoch callback when a call passes its deadline.
#[derive(Debug)]
struct DeadlineReached;

impl std::fmt::Display for DeadlineReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline reached")
    }
}

impl std::error::Error for DeadlineReached {}

impl Engine {
    /// Builds the engine: async, epoch interruption, pooling allocator with copy-on-write
    /// memory images, and WASI 0.2 and `wasmhost:gpu` in the linker (the GPU itself is
    /// opened on first use). WASIp3 services get an engine of their own when the first
    /// one loads.
    pub fn new(config: EngineConfig) -> Result<Self, LoadError> {
        Self::with_capabilities(config, CapabilitiesConfig::default())
    }

    /// [`new`](Self::new) with the operator's capability settings.
    pub fn with_capabilities(
        config: EngineConfig,
        capabilities: CapabilitiesConfig,
    ) -> Result<Self, LoadError> {
        Self::with_capabilities_early(config, capabilities, |_| {})
    }

    /// [`Engine::with_capabilities`], handing `early` what can map cached native code
    /// as soon as the wasmtime engine exists, while the linker is still being built.
    pub fn with_capabilities_early(
        config: EngineConfig,
        capabilities: CapabilitiesConfig,
        early: impl FnOnce(EarlyEngine),
    ) -> Result<Self, LoadError> {
        let metrics = Arc::new(Metrics::new());
        let cpu = cpu::GuestCpu::for_this_machine(
            metrics.instances_computing.clone(),
            metrics.guest_yields.clone(),
        );
        let runtime = runtime::Runtime::with_early(&config, false, early)?;
        let ticker = runtime::Ticker::start(runtime.engine.clone(), cpu.activity.clone());
        let gpu = Gpu::new(capabilities.gpu);
        let outbound = Outbound::new(capabilities.outbound, metrics.outbound_counters());
        Ok(Self {
            runtime,
            concurrent: std::sync::OnceLock::new(),
            gpu,
            outbound,
            plain_allowed_outbound_hosts: capabilities.plain_allowed_outbound_hosts,
            resident: code::Resident::new(config.code_budget, metrics.clone()),
            metrics,
            ticker,
            pools: pool::PoolRegistry::default(),
            cpu,
            config,
        })
    }

    /// The host's GPU capability.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The metrics in Prometheus text format, GPU totals refreshed.
    pub fn render_metrics(&self) -> String {
        let gpu = self.gpu.stats();
        self.metrics.gpu_submits.set(gpu.submits as i64);
        self.metrics.gpu_seconds.set(gpu.gpu_time.as_secs_f64());
        self.pools.refresh_gauges();
        self.metrics.encode()
    }

    /// The host's GPU capability.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Calls of `spec` allowed in flight: max_containers × max_inputs where the endpoint
    /// states it, else the host's bound.
    pub fn max_concurrency(&self, spec: &EndpointSpec) -> usize {
        // A WASIp3 service's instances take `max_inputs` each even where it is not stated.
        let inputs = match spec.kind {
            EndpointKind::Service => self.max_inputs(spec),
            _ => spec.scaling.max_inputs.unwrap_or(1) as usize,
        };
        match spec.scaling.max_containers {
            Some(c) => (c as usize) * inputs,
            None => self.config.max_concurrency,
        }
    }

    /// [`Engine::max_concurrency`] for an endpoint of `component`: typed endpoints with
    /// async handlers take `max_inputs` per instance like WASIp3 services.
    pub fn max_concurrency_in(&self, component: &LoadedComponent, spec: &EndpointSpec) -> usize {
        match (spec.kind, spec.scaling.max_containers) {
            (EndpointKind::Function, Some(c)) if component.serves_async => {
                (c as usize) * self.max_inputs(spec)
            }
            _ => self.max_concurrency(spec),
        }
    }

    /// The GPU session of a call to `spec`: granted when it declares a GPU.
    fn gpu_for(&self, spec: &EndpointSpec) -> GpuGrant {
        self.gpu_if(spec.gpu.is_some(), "endpoint", &spec.name)
    }

    /// The GPU session of an attempt of function `spec`: granted when it declares a GPU.
    fn function_gpu(&self, spec: &FunctionSpec) -> GpuGrant {
        self.gpu_if(spec.gpu.is_some(), "function", &spec.name)
    }

    fn gpu_if(&self, declared: bool, what: &str, name: &str) -> GpuGrant {
        GpuGrant::if_declared(&self.gpu, declared, what, name)
    }

    /// A GPU session that refuses every use, saying why.
    fn no_gpu(&self, why: &str) -> GpuGrant {
        GpuGrant::denied(&self.gpu, why)
    }

    /// The outgoing-request hook of an instance of `component` serving `function`.
    fn outbound_for(&self, component: &LoadedComponent, function: &str) -> OutboundHooks {
        let manifest = &component.manifest;
        let who = format!("{}/{function}", manifest.app);
        self.outbound
            .prepare(&who, manifest.allowed_outbound_hosts(function))
    }

    /// The limits an endpoint's calls run under.
    pub fn limits_for(&self, spec: &EndpointSpec) -> Limits {
        Limits {
            timeout: spec.timeout.unwrap_or(self.config.default_timeout),
            memory_mib: spec.memory_mib.unwrap_or(self.config.default_memory_mib),
        }
    }

    fn default_limits(&self) -> Limits {
        Limits {
            timeout: self.config.default_timeout,
            memory_mib: self.config.default_memory_mib,
        }
    }

    /// The limits a function's attempts run under.
    pub fn function_limits(&self, spec: &FunctionSpec) -> Limits {
        Limits {
            timeout: spec.timeout.unwrap_or(self.config.default_timeout),
            memory_mib: spec.memory_mib.unwrap_or(self.config.default_memory_mib),
        }
    }

    /// Creates a store and an instance of `component` as a request would, calling
    /// nothing, and returns how long that took with the instance (its store; dropping it
    /// frees the pool slot). For the benchmark (`bench/`).
    pub async fn instantiate_once(
        &self,
        component: &LoadedComponent,
    ) -> Result<(Duration, Box<dyn std::any::Any + Send>), CallError> {
        let code = self.code(component).await?;
        let started = Instant::now();
        let gpu = self.no_gpu("benchmark instances cannot use the GPU");
        let outbound = self.outbound.deny_all("benchmark");
        let mut store = self.store_for(
            component,
            self.default_limits(),
            component.context(),
            gpu,
            outbound,
        )?;
        let instantiated = match &**code {
            Prepared::Proxy(proxy) => proxy.pre.instantiate_async(&mut store).await.map(drop),
            Prepared::Service(service) => service.pre.instantiate_async(&mut store).await.map(drop),
            Prepared::Guest(exports) => exports.pre.instantiate_async(&mut store).await.map(drop),
            Prepared::Command(pre) => pre.instantiate_async(&mut store).await.map(drop),
        };
        instantiated.map_err(InstantiateError::from)?;
        Ok((started.elapsed(), Box::new(store)))
    }

    /// A store on the engine of WASIp2 components and wasmhost guests.
    fn new_store(
        &self,
        limits: Limits,
        ctx: &CallContext,
        gpu: GpuGrant,
    ) -> Result<Store<InstanceState>, CallError> {
        let outbound = self.outbound.deny_all("deploy");
        self.new_store_with(&self.runtime.engine, limits, None, ctx, gpu, outbound)
    }

    /// A store on `component`'s engine.
    fn store_for(
        &self,
        component: &LoadedComponent,
        limits: Limits,
        ctx: &CallContext,
        gpu: GpuGrant,
        outbound: OutboundHooks,
    ) -> Result<Store<InstanceState>, CallError> {
        self.new_store_with(&component.wasm_engine, limits, None, ctx, gpu, outbound)
    }

    fn new_store_with(
        &self,
        engine: &wasmtime::Engine,
        limits: Limits,
        port_map: Option<(u16, u16)>,
        ctx: &CallContext,
        gpu: GpuGrant,
        outbound: OutboundHooks,
    ) -> Result<Store<InstanceState>, CallError> {
        let deadline = Instant::now() + limits.timeout;
        let state = InstanceState::new(
            (limits.memory_mib as usize) << 20,
            deadline,
            port_map,
            ctx,
            gpu,
            outbound,
        )
        .map_err(|e| InstantiateError::Sandbox(Arc::new(e)))?
        .counted(metrics::LiveInstance::new(&self.metrics.instances_live))
        .on_cpu(cpu::GuestRunning::new(&self.cpu));
        self.metrics.instances_created.inc();
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        // Yield to the executor every tick so a spinning guest cannot starve other
        // requests, and trap once the current call's deadline has passed.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(DeadlineReached))
            } else {
                ctx.data().yielding();
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(store)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Turns a failed call into the reason a user should read.
fn classify(e: wasmtime::Error, state: &InstanceState, limits: Limits) -> CallError {
    if e.downcast_ref::<DeadlineReached>().is_some() {
        return CallError::Timeout(limits.timeout);
    }
    // Every pool slot is taken: the host is at capacity, the guest did nothing wrong.
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return InstantiateError::AtCapacity(e.into()).into();
    }
    if state.limiter.refused {
        return CallError::OutOfMemory {
            mib: limits.memory_mib as u64,
        };
    }
    trapped(e, state).into()
}

/// A trap with the panic message the guest printed before it, if any.
fn trapped(e: wasmtime::Error, state: &InstanceState) -> error::Trap {
    error::Trap::Wasm {
        panic: panic_message(&state.stderr.peek()),
        source: e.into(),
    }
}

/// Pulls the message of a Rust panic out of captured stderr.
fn panic_message(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines().skip_while(|l| !l.contains("panicked at"));
    let head = lines.next()?;
    let message: String = lines
        .take_while(|l| !l.starts_with("note:"))
        .collect::<Vec<_>>()
        .join(" ");
    let message = if message.trim().is_empty() {
        head.to_string()
    } else {
        message
    };
    Some(truncate(message.trim(), 300))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Sends what the guest printed to its call's log (when the call has one) and to the host's
/// log, one event per line.
fn forward_output(app: &str, function: &str, data: &InstanceState) {
    for (stream, bytes) in [
        (OutputStream::Stdout, data.stdout.take()),
        (OutputStream::Stderr, data.stderr.take()),
    ] {
        if bytes.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        output::emit(app, function, stream, &text, data.output.as_ref());
    }
}

/// Hands the current call's complete lines to its log as they are written. An instance's
/// sink is fixed, and a warm one serves one endpoint: it follows under names made once and
/// keeps following between calls (it prints nothing while idle), so a call on it costs a
/// comparison, not four locks and two sinks handed over.
fn follow_output((app, function): (&str, &str), data: &mut InstanceState) {
    let Some(sink) = &data.output else {
        return;
    };
    if data
        .followed
        .as_ref()
        .is_some_and(|n| n.0 == app && n.1 == function)
    {
        return;
    }
    let names = Arc::new((app.to_owned(), function.to_owned()));
    data.followed = Some(names.clone());
    for (captured, stream) in [
        (&data.stdout, OutputStream::Stdout),
        (&data.stderr, OutputStream::Stderr),
    ] {
        captured.follow(output::Live {
            sink: sink.clone(),
            names: names.clone(),
            stream,
        });
    }
}

/// The typed exports in `store`'s slot of its [`state::ExportCache`], looked up with
/// `load` on the instance's first call.
fn cached<T: Clone>(
    store: &mut Store<InstanceState>,
    slot: impl Fn(&mut state::ExportCache) -> &mut Option<T>,
    load: impl FnOnce(&mut Store<InstanceState>) -> wasmtime::Result<T>,
) -> wasmtime::Result<T> {
    if let Some(found) = slot(&mut store.data_mut().exports) {
        return Ok(found.clone());
    }
    let loaded = load(store)?;
    *slot(&mut store.data_mut().exports) = Some(loaded.clone());
    Ok(loaded)
}

/// Tells the call's log why a call failed.
fn report_failure(function: &str, data: &InstanceState, error: &CallError) {
    if let Some(sink) = &data.output {
        sink.failed(function, &error.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_panic_message() {
        let err = b"thread '<unnamed>' panicked at src/lib.rs:9:5:\nboom at 3\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(err).as_deref(), Some("boom at 3"));
        assert_eq!(panic_message(b"just logging\n"), None);
    }
}
