//! Pools of warm instances, like Modal's containers: checked out for a call and back in
//! after it, kept for `min_containers` and `buffer_containers`, retired after the
//! scale-down window (scale to zero) or when the host stops.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::Store;
use wasmtime::component::Instance;

use super::demand::{Demand, HandedOut, PATIENCE};
use super::idle::{Idle, IdleList};
use super::registered::Registered;
use super::state::InstanceState;
use super::workers::{WorkerPool, Workers};
use super::world::Prepared;
use super::{
    CallError, EndpointKind, EndpointSpec, Engine, IsolationSetting, Limits, LoadedComponent,
};

/// An instance with its store, between calls.
pub(crate) struct Live {
    pub(super) store: Store<InstanceState>,
    pub(super) instance: Instance,
    /// The code it was made from: calls into it use this code's export indices.
    pub(super) code: Arc<Prepared>,
    /// When it last went idle.
    pub(super) idle_since: Instant,
    /// Counts it in its function's live gauge.
    pub(super) _counted: super::metrics::LiveInstance,
    /// Counts it as handed out by its endpoint's pool, while it is.
    pub(super) out: HandedOut,
}

impl Idle for Live {
    fn idle_since(&self) -> Instant {
        self.idle_since
    }
}

/// The idle instances of one endpoint and its calls in flight.
#[derive(Default)]
struct EndpointPool {
    idle: IdleList<Live>,
    demand: Arc<Demand>,
}

/// The warm instances of one component.
pub(crate) struct WarmInstances {
    /// The app's name, for the metrics.
    app: String,
    /// Each endpoint's pool, in the manifest's order (by index: an app deployed under a
    /// name of its own renames its endpoints after this is made). Only read afterwards:
    /// requests on both serving threads find their pool here without a lock.
    endpoints: Box<[EndpointPool]>,
    /// Endpoints whose buffer is being refilled.
    refilling: Mutex<HashSet<String>>,
    /// The instance that serves class methods; the lock serialises calls on it.
    pub(super) class: tokio::sync::Mutex<Option<Live>>,
}

/// Every component's warm pool, so a full pooling allocator can make room by evicting
/// the instance idle the longest, whichever app it belongs to.
#[derive(Default)]
pub(crate) struct PoolRegistry {
    pools: Mutex<Registered<WarmInstances>>,
    /// The instances of concurrent endpoints (WASIp3 services, async typed endpoints).
    concurrent: Mutex<Registered<dyn WorkerPool>>,
}

impl PoolRegistry {
    /// A new, registered pool for a component of `app` with `endpoints` endpoints.
    pub(super) fn register(&self, app: &str, endpoints: usize) -> Arc<WarmInstances> {
        let warm = Arc::new(WarmInstances {
            app: app.to_owned(),
            endpoints: (0..endpoints).map(|_| EndpointPool::default()).collect(),
            refilling: Mutex::default(),
            class: tokio::sync::Mutex::default(),
        });
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.push(Arc::downgrade(&warm));
        warm
    }

    /// Registers the workers of a component's concurrent endpoints for eviction.
    pub(super) fn register_concurrent<J: Send + 'static>(&self, workers: &Arc<Workers<J>>) {
        let workers: Arc<dyn WorkerPool> = workers.clone();
        let mut pools = self.concurrent.lock().unwrap_or_else(|p| p.into_inner());
        pools.push(Arc::downgrade(&workers));
    }

    /// Asks an idle instance of a concurrent endpoint to end and waits (briefly) until it
    /// has; returns whether one did.
    async fn evict_concurrent(&self) -> bool {
        let pools = self.live_concurrent();
        let Some(mut ended) = pools.iter().find_map(|p| p.evict()) else {
            return false;
        };
        let wait = ended.wait_for(Option::is_some);
        tokio::time::timeout(std::time::Duration::from_secs(1), wait)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Takes the instance idle the longest out of its pool, if any is idle.
    fn evict_oldest(&self) -> Option<(Arc<WarmInstances>, Live)> {
        let pools = self.live_pools();
        let (warm, pool, _) = pools
            .iter()
            .flat_map(|warm| {
                warm.endpoints
                    .iter()
                    .filter_map(move |pool| Some((warm, pool, pool.idle.oldest()?)))
            })
            .min_by_key(|&(_, _, since)| since)?;
        let live = pool.idle.take_oldest()?;
        Some((warm.clone(), live))
    }

    fn live_concurrent(&self) -> Vec<Arc<dyn WorkerPool>> {
        let pools = self.concurrent.lock().unwrap_or_else(|p| p.into_inner());
        pools.live().collect()
    }

    fn live_pools(&self) -> Vec<Arc<WarmInstances>> {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.live().collect()
    }

    /// Sets every pool's idle gauges from its lists, for the metrics about to be read.
    pub(super) fn refresh_gauges(&self) {
        for warm in self.live_pools() {
            for pool in &warm.endpoints {
                pool.idle.refresh_gauge();
            }
        }
        for workers in self.live_concurrent() {
            workers.refresh_gauges();
        }
    }
}

impl WarmInstances {
    /// The pool of the endpoint at `index` in the manifest.
    fn pool(&self, index: usize) -> Option<&EndpointPool> {
        self.endpoints.get(index)
    }

    pub(super) fn idle_count(&self, index: usize) -> usize {
        self.pool(index).map_or(0, |p| p.idle.len())
    }

    /// Takes every idle instance out (their code is being evicted; the capacity path:
    /// no ASGI lifespan shutdown).
    pub(super) fn take_idle(&self) -> Vec<Live> {
        self.endpoints
            .iter()
            .flat_map(|pool| pool.idle.take_all())
            .collect()
    }

    /// Claims the refill of `endpoint`; false when one is already running.
    fn start_refill(&self, endpoint: &str) -> bool {
        let mut refilling = self.refilling.lock().unwrap_or_else(|p| p.into_inner());
        refilling.insert(endpoint.to_owned())
    }

    fn end_refill(&self, endpoint: &str) {
        let mut refilling = self.refilling.lock().unwrap_or_else(|p| p.into_inner());
        refilling.remove(endpoint);
    }

    /// An idle instance of `endpoint`, if one waits, handed out.
    fn pop(&self, index: usize) -> Option<Live> {
        let pool = self.pool(index)?;
        let mut live = pool.idle.pop()?;
        live.out.count_in(&pool.demand);
        live.store.data_mut().claim(true);
        Some(live)
    }

    /// The calls in flight on the endpoint at `index` (a count of its own for an
    /// endpoint the manifest lacks).
    fn demand(&self, index: Option<usize>) -> Arc<Demand> {
        index
            .and_then(|i| self.pool(i))
            .map_or_else(Arc::default, |p| p.demand.clone())
    }
}

impl Engine {
    /// An idle instance of `spec` made from `code`, or a new one. While every core
    /// computes for a call and instances of `spec` are out, a request for a costly
    /// instance first waits for one to come back: a new one would only share the cores,
    /// at the price of its first-request faults and its memory (see [`super::cpu`] and
    /// [`Demand::wait_for_idle`]). A cheap one ([`Prepared::starts_cheaply`]) is started
    /// at once: waiting costs more than it (the hand-over wakes a task, and requests queue
    /// behind a few instances).
    pub(super) async fn checkout(
        &self,
        component: &LoadedComponent,
        code: &Arc<Prepared>,
        spec: &EndpointSpec,
        limits: Limits,
    ) -> Result<Live, CallError> {
        // Per-request isolation (or a shape that cannot be entered twice): a fresh one.
        // Starting an instance is boxed: inline, its state would size every call's
        // future, which is moved a few times a request.
        if !self.reusable(spec) {
            return Box::pin(self.new_warm(component, code, spec, limits)).await;
        }
        let warm = &component.warm;
        // An instance made from code since evicted and loaded again is dropped: its export
        // indices differ.
        let index = component.endpoint_index(spec);
        let pop = || std::iter::from_fn(|| warm.pop(index?)).find(|l| Arc::ptr_eq(&l.code, code));
        if let Some(live) = pop() {
            return Ok(live);
        }
        let demand = warm.demand(index);
        let patience = (PATIENCE, code.starts_cheaply());
        if let Some(live) = demand.wait_for_idle(&self.cpu, patience, pop).await {
            return Ok(live);
        }
        let handed = demand.hand_out();
        let starting = (demand.start(), self.cpu.starting());
        let mut live = Box::pin(self.new_warm(component, code, spec, limits)).await?;
        live.store.data_mut().claim(true);
        drop(starting);
        live.out = handed;
        Ok(live)
    }

    /// A new instance of `spec` ready to serve (ASGI apps run lifespan startup).
    pub(super) async fn new_warm(
        &self,
        component: &LoadedComponent,
        code: &Arc<Prepared>,
        spec: &EndpointSpec,
        limits: Limits,
    ) -> Result<Live, CallError> {
        let mut live = self
            .start(
                component,
                code,
                &spec.name,
                limits,
                component.context(),
                self.gpu_for(spec),
            )
            .await?;
        let code = live.code.clone();
        if let (EndpointKind::Asgi, Ok(exports)) = (spec.kind, self.guest(&code))
            && let Some(asgi) = &exports.asgi
        {
            let names = (component.manifest.app.as_str(), spec.name.as_str());
            let started = self
                .run(&mut live, limits, names, async |store, instance| {
                    asgi.load(&mut *store, instance)?
                        .call_startup(&mut *store, &spec.name)
                        .await
                })
                .await?;
            started.map_err(|message| super::error::Trap::Hook {
                hook: "lifespan startup",
                message,
            })?;
        }
        Ok(live)
    }

    /// Retires the idle instances of typed endpoints and ASGI/WSGI apps that have been idle
    /// longer than the scale-down window, so an app without traffic scales to zero.
    /// Class instances are left alone: their state is the point of them.
    pub async fn scale_down(&self, component: &LoadedComponent) -> usize {
        let window_of = |index: usize| {
            let spec = component.manifest.endpoints.get(index);
            let window = spec.and_then(|s| s.scaling.scaledown_window);
            (
                window.unwrap_or(self.config.scaledown_window),
                spec.map_or(self.config.min_containers, |s| self.min_containers(s)),
            )
        };
        // The most recently used come last; the oldest beyond `min_containers` go.
        let expired: Vec<(usize, Vec<Live>)> = (component.warm.endpoints.iter().enumerate())
            .map(|(i, pool)| {
                let (window, keep_warm) = window_of(i);
                (i, pool.idle.take_expired(window, keep_warm))
            })
            .collect();
        self.retire_each(component, expired).await
    }

    /// Retires each endpoint's instances in `lives` (by index); returns how many.
    async fn retire_each(
        &self,
        component: &LoadedComponent,
        lives: Vec<(usize, Vec<Live>)>,
    ) -> usize {
        let mut retired = 0;
        for (index, lives) in lives {
            let Some(spec) = component.manifest.endpoints.get(index) else {
                continue;
            };
            for live in lives {
                self.retire_app(component, spec, live).await;
                retired += 1;
            }
        }
        retired
    }

    /// Starts `min_containers` idle instances of every reusable endpoint ahead of traffic,
    /// so the first requests find them warm.
    pub async fn prewarm(self: &Arc<Self>, component: &Arc<LoadedComponent>) {
        for spec in &component.manifest.endpoints {
            if self.fill_concurrent(component, spec, self.min_containers(spec)) {
                continue;
            }
            if self.reusable(spec) {
                self.fill(component, spec, self.min_containers(spec)).await;
            }
        }
    }

    /// Keeps `buffer_containers` idle instances ready while an endpoint takes traffic
    /// (Modal's buffer_containers): a request that finds fewer starts the missing ones in
    /// the background, so the next requests of a burst find them warm.
    pub fn ensure_buffer(self: &Arc<Self>, component: &Arc<LoadedComponent>, spec: &EndpointSpec) {
        let wanted = self.buffer_containers(spec);
        if self.fill_concurrent(component, spec, wanted) {
            return;
        }
        if wanted == 0
            || !self.reusable(spec)
            || component
                .endpoint_index(spec)
                .is_some_and(|i| component.warm.idle_count(i) >= wanted)
        {
            return;
        }
        if !component.warm.start_refill(&spec.name) {
            return;
        }
        let (engine, component, spec) = (self.clone(), component.clone(), spec.clone());
        tokio::spawn(async move {
            engine.fill(&component, &spec, wanted).await;
            component.warm.end_refill(&spec.name);
        });
    }

    /// For a concurrent endpoint (a WASIp3 service, an async typed endpoint): starts idle
    /// instances until `wanted` wait (each starts in its own task). Returns whether
    /// `spec` is one.
    fn fill_concurrent(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        wanted: usize,
    ) -> bool {
        let wanted = match self.single_use(spec) {
            true => 0,
            false => wanted.min(self.idle_cap(spec)),
        };
        match spec.kind {
            EndpointKind::Service => {
                for fresh in component.services.top_up(&spec.name, wanted) {
                    self.start_service(component, spec, fresh);
                }
            }
            EndpointKind::Function if component.serves_async => {
                for fresh in component.typed.top_up(&spec.name, wanted) {
                    self.start_typed(component, spec, fresh);
                }
            }
            _ => return false,
        }
        true
    }

    /// Starts idle instances of `spec` until `wanted` wait.
    async fn fill(&self, component: &LoadedComponent, spec: &EndpointSpec, wanted: usize) {
        let limits = self.limits_for(spec);
        // A spec the manifest lacks has no pool to fill (its instances would be retired).
        let Some(index) = component.endpoint_index(spec) else {
            return;
        };
        while component.warm.idle_count(index) < wanted.min(self.idle_cap(spec)) {
            let started = match self.code(component).await {
                Ok(code) => self.new_warm(component, &code, spec, limits).await,
                Err(e) => Err(e),
            };
            match started {
                Ok(live) => self.checkin(component, spec, live).await,
                Err(e) => {
                    tracing::warn!(app = %component.manifest.app, endpoint = %spec.name, "cannot start a warm instance: {e}");
                    break;
                }
            }
        }
    }

    /// Makes room in a full pooling allocator: retires the instance idle the longest
    /// from any app's warm pool, else an idle instance of a concurrent endpoint.
    /// Returns whether one was retired.
    pub(super) async fn make_room(&self) -> bool {
        self.evict_idle() || self.pools.evict_concurrent().await
    }

    /// Retires the warm instance idle the longest, from any app (without its ASGI
    /// lifespan shutdown: this is the capacity path). Returns whether one was retired.
    fn evict_idle(&self) -> bool {
        let Some((warm, live)) = self.pools.evict_oldest() else {
            return false;
        };
        tracing::info!(app = %warm.app, "evicted an idle instance: the host is at --max-instances");
        drop(live);
        true
    }

    /// Whether `spec`'s instances are kept warm between requests. Per-request isolation,
    /// asked for anywhere, wins.
    pub(super) fn reusable(&self, spec: &EndpointSpec) -> bool {
        let asked = self.config.isolation == Some(IsolationSetting::Reuse) || spec.scaling.reuse;
        let shape = match spec.kind {
            EndpointKind::Function | EndpointKind::Asgi | EndpointKind::Wsgi => true,
            // A WASIp2 handler never promised it can be entered twice (WASI issue #898):
            // componentize-js guests fail on their second request.
            EndpointKind::Proxy => asked,
            // WASIp3 services keep their own instances, several requests in each.
            EndpointKind::Method | EndpointKind::WebServer | EndpointKind::Service => false,
        };
        let per_request =
            self.config.isolation == Some(IsolationSetting::PerRequest) || spec.scaling.per_request;
        // GPU endpoints get a fresh instance so their GPU objects end with the call.
        shape && !per_request && spec.gpu.is_none()
    }

    pub(super) fn min_containers(&self, spec: &EndpointSpec) -> usize {
        spec.scaling
            .min_containers
            .map_or(self.config.min_containers, |n| n as usize)
    }

    pub(super) fn buffer_containers(&self, spec: &EndpointSpec) -> usize {
        spec.scaling
            .buffer_containers
            .map_or(self.config.buffer_containers, |n| n as usize)
    }

    /// Idle instances kept for `spec`. Like a Modal container, an instance that served a
    /// burst stays warm until its scale-down window passes (the next burst then finds it
    /// instead of paying a new instance's first-request faults), bounded by
    /// `max_containers` here and by `--max-instances` host-wide, where the instance idle
    /// the longest is evicted to make room.
    fn idle_cap(&self, spec: &EndpointSpec) -> usize {
        spec.scaling
            .max_containers
            .map_or(usize::MAX, |max| max as usize)
    }

    /// Returns an instance after a successful call; past `max_containers`, or when `spec`
    /// is not reusable, it is retired (ASGI apps run lifespan shutdown).
    pub(super) async fn checkin(
        &self,
        component: &LoadedComponent,
        spec: &EndpointSpec,
        mut live: Live,
    ) {
        // Requests waiting for this instance to return look again once it is back (or gone).
        let _settles = live.store.data_mut().settles.take();
        // Retiring (a guest call for ASGI apps) is boxed, as starting is in `checkout`.
        if !self.reusable(spec) {
            return Box::pin(self.retire_app(component, spec, live)).await;
        }
        live.idle_since = Instant::now();
        live.out.uncount();
        live.store.data_mut().claim(false);
        // Its code was evicted while it ran: it would only keep that code resident.
        if !component.code_is(&live.code) {
            return;
        }
        let warm = &component.warm;
        let cap = self.idle_cap(spec);
        if let Some(pool) = component.endpoint_index(spec).and_then(|i| warm.pool(i))
            && (cap == usize::MAX || pool.idle.len() < cap)
        {
            let gauge = || self.metrics.idle_gauge(&component.manifest.app, &spec.name);
            pool.idle.push(live, gauge);
            pool.demand.came_back();
            return;
        }
        Box::pin(self.retire_app(component, spec, live)).await;
    }

    /// Retires an idle instance of an ASGI/WSGI app: lifespan shutdown for ASGI apps.
    async fn retire_app(&self, component: &LoadedComponent, spec: &EndpointSpec, mut live: Live) {
        let code = live.code.clone();
        if let (EndpointKind::Asgi, Ok(exports)) = (spec.kind, self.guest(&code))
            && let Some(asgi) = &exports.asgi
        {
            let names = (component.manifest.app.as_str(), spec.name.as_str());
            let limits = self.limits_for(spec);
            let _ = self
                .run(&mut live, limits, names, async |store, instance| {
                    asgi.load(&mut *store, instance)?
                        .call_shutdown(&mut *store, &spec.name)
                        .await
                })
                .await;
        }
    }

    /// Retires every warm instance of `component`, as the host does when it stops: ASGI
    /// apps run lifespan shutdown, the class instance runs `exit`.
    pub async fn retire(&self, component: &LoadedComponent) {
        component.services.close_all();
        component.typed.close_all();
        component.functions.close_all();
        let idle: Vec<(usize, Vec<Live>)> = (component.warm.endpoints.iter().enumerate())
            .map(|(i, pool)| {
                let lives = pool.idle.take_all();
                pool.idle.refresh_gauge();
                (i, lives)
            })
            .collect();
        self.retire_each(component, idle).await;
        let class = component.warm.class.lock().await.take();
        let spec = component
            .manifest
            .endpoints
            .iter()
            .find(|e| e.kind == EndpointKind::Method);
        let code = class.as_ref().map(|live| live.code.clone());
        let exports = code.as_deref().map(|code| self.guest(code));
        if let (Some(mut live), Some(spec), Some(Ok(exports))) = (class, spec, exports)
            && let Some(lifecycle) = &exports.lifecycle
        {
            let names = (component.manifest.app.as_str(), "exit");
            let limits = self.limits_for(spec);
            let _ = self
                .run(&mut live, limits, names, async |store, instance| {
                    lifecycle
                        .load(&mut *store, instance)?
                        .call_exit(&mut *store)
                        .await
                })
                .await;
        }
    }
}
