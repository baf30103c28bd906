//! Loading a component: validation, the native-code cache, `describe`, and the
//! pre-initialisation snapshot of guests with init work.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use wasmtime::component::Component;

use super::cache::{self, ArtifactCache, CacheOutcome};
use super::code::{CodeFacts, CodeSource};
use super::error::DescribeError;
use super::runtime::{self, Runtime};
use super::world::{self, Prepared, World};
use super::{
    CallContext, DESCRIBE_TIMEOUT, Engine, Limits, LoadError, LoadedComponent, TICK, trapped,
    validate, web_server, workers,
};
use crate::manifest::{AppManifest, EndpointKind, app_name_from_stem};

/// How a component's `#[wasmhost::init]` work reaches its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreInit {
    /// It has none.
    None,
    /// Baked into a snapshot: instances start initialised.
    Snapshot {
        /// The snapshot came from the cache rather than running the init work now.
        cached: bool,
    },
    /// Run in every new instance before its first call (snapshots turned off).
    EachInstance,
}

/// A component's bytes with what is learnt from the bytes alone (their sha256, which
/// names it in the cache, and two scans of its sections): found where it was read, which
/// need not wait for the engine.
pub struct ComponentBytes {
    /// One copy of the file in memory, shared with the compiler thread.
    bytes: Bytes,
    /// Hex sha256 of `bytes`.
    digest: String,
    /// It needs the concurrent engine (a WASIp3 service, async handlers).
    concurrent: bool,
    /// It declares that its instances may be reused.
    declares_reuse: bool,
    /// Its native code and cached manifest, read while the engine's linker was built.
    mapped: Option<Mapped>,
}

/// What [`EarlyEngine::map_cached`] found in the cache.
struct Mapped {
    component: Component,
    manifest: Option<AppManifest>,
}

impl ComponentBytes {
    /// Takes, hashes and scans a component's bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            digest: cache::digest(&bytes),
            concurrent: runtime::needs_concurrency(&bytes),
            declares_reuse: world::declares_reuse(&bytes),
            bytes,
            mapped: None,
        }
    }
}

/// The wasmtime engine of an [`Engine`] still being built (its linker is not ready): it
/// can already map cached native code, so a start does that while the linker is built.
pub struct EarlyEngine {
    engine: wasmtime::Engine,
    cache: ArtifactCache,
}

impl EarlyEngine {
    pub(super) fn new(engine: &wasmtime::Engine, cache: &ArtifactCache) -> Self {
        Self {
            engine: engine.clone(),
            cache: cache.clone(),
        }
    }

    /// Maps `component`'s native code from the cache, if it is there, for the load to use.
    /// A component for the concurrent engine (made later, on its first load) is left as
    /// it is.
    pub fn map_cached(&self, component: &mut ComponentBytes) {
        if component.concurrent {
            return;
        }
        component.mapped = self
            .cache
            .lookup(&self.engine, &component.digest)
            .map(|code| Mapped {
                component: code,
                manifest: self.cache.lookup_manifest(&component.digest),
            });
    }
}

impl Engine {
    /// Reads, validates and compiles (or maps from the cache) a component file; a
    /// component without `describe` is named after the file's stem.
    pub async fn load_file(&self, path: &Path) -> Result<LoadedComponent, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(LoadError::reading(path))?;
        self.load_read(path, ComponentBytes::new(bytes)).await
    }

    /// [`load_file`](Self::load_file) for a file whose bytes were read already.
    pub async fn load_read(
        &self,
        path: &Path,
        component: ComponentBytes,
    ) -> Result<LoadedComponent, LoadError> {
        let loaded = self
            .load_shared(component, &app_name_from_stem(&file_stem(path)))
            .await?;
        loaded.keep_source(path.to_owned());
        Ok(loaded)
    }

    /// A component deployed earlier, whose sha256 is `digest`, without loading its code:
    /// what its first load found out is read from the cache and the code is mapped on
    /// the first call. Loads it fully when the cache lacks any of it.
    pub async fn load_deployed(
        &self,
        path: &Path,
        digest: &str,
    ) -> Result<LoadedComponent, LoadError> {
        match self.load_lazily(path, digest).await? {
            Some(loaded) => Ok(loaded),
            None => self.load_file(path).await,
        }
    }

    async fn load_lazily(
        &self,
        path: &Path,
        digest: &str,
    ) -> Result<Option<LoadedComponent>, LoadError> {
        let started = Instant::now();
        let Some(facts) = self.runtime.cache.lookup_facts(digest) else {
            return Ok(None);
        };
        let runtime = match facts.concurrent {
            true => self.concurrent_runtime()?,
            false => &self.runtime,
        };
        let app_name = app_name_from_stem(&file_stem(path));
        let mut manifest = match facts.world {
            World::Guest => match runtime.cache.lookup_manifest(digest) {
                Some(manifest) => manifest,
                None => return Ok(None),
            },
            world => synthesised(world, &app_name, facts.declares_reuse),
        };
        manifest.allow_plain_outbound(&self.plain_allowed_outbound_hosts);
        self.check_gpu(&manifest).await?;
        let (pre_init, key) = self.pre_init_of(runtime, &manifest, digest);
        if !runtime.cache.contains(&key) {
            return Ok(None);
        }
        let loaded = self.assemble(
            runtime,
            manifest,
            (digest.to_owned(), CacheOutcome::Hit, started),
            pre_init,
            facts,
            key,
        );
        loaded.keep_source(path.to_owned());
        Ok(Some(loaded))
    }

    /// Validates and compiles (or maps from the cache) a component's bytes; a component
    /// without `describe` is named `app`.
    pub async fn load_bytes(&self, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        self.load_named(bytes, "app").await
    }

    /// Like [`Engine::load_bytes`], naming a component without `describe` `app_name`.
    pub async fn load_named(
        &self,
        bytes: &[u8],
        app_name: &str,
    ) -> Result<LoadedComponent, LoadError> {
        self.load_shared(ComponentBytes::new(Bytes::copy_from_slice(bytes)), app_name)
            .await
    }

    async fn load_shared(
        &self,
        component: ComponentBytes,
        app_name: &str,
    ) -> Result<LoadedComponent, LoadError> {
        let started = Instant::now();
        validate::check_header(&component.bytes)?;
        let runtime = match component.concurrent {
            true => self.concurrent_runtime()?,
            false => &self.runtime,
        };
        let loaded = self
            .load_checked(runtime, component, app_name, started)
            .await;
        if loaded.is_err() {
            runtime.cache.refused();
        }
        loaded
    }

    /// The part of [`load_shared`](Self::load_shared) that may compile: every check a
    /// component must pass before it leaves a trace in the cache.
    async fn load_checked(
        &self,
        runtime: &Runtime,
        ComponentBytes {
            bytes,
            digest,
            declares_reuse,
            mapped,
            ..
        }: ComponentBytes,
        app_name: &str,
        started: Instant,
    ) -> Result<LoadedComponent, LoadError> {
        let mut early_manifest = None;
        let (component, outcome) = match mapped {
            Some(Mapped {
                component,
                manifest,
            }) if wasmtime::Engine::same(component.engine(), &runtime.engine) => {
                self.metrics.cache_hits.inc();
                early_manifest = manifest;
                (component, CacheOutcome::Hit)
            }
            _ => self.compiled(runtime, &digest, bytes.clone()).await?,
        };
        let mut prepared = world::prepare(&runtime.engine, &runtime.linker, &component)?;
        let facts = CodeFacts {
            concurrent: !std::ptr::eq(runtime, &self.runtime),
            world: prepared.world(),
            serves_async: prepared.serves_async(),
            declares_reuse,
        };
        let mut described = false;
        let mut manifest = match &prepared {
            Prepared::Guest(exports) => {
                // What `describe` said is cached with the native code (same key), so a
                // restart maps the code and serves without instantiating the guest first.
                let cached = match outcome {
                    CacheOutcome::Hit => {
                        early_manifest.or_else(|| runtime.cache.lookup_manifest(&digest))
                    }
                    CacheOutcome::Compiled => None,
                };
                let manifest = match cached {
                    Some(manifest) => manifest,
                    None => {
                        described = true;
                        self.describe(&runtime.engine, exports).await?
                    }
                };
                exports.check(&manifest)?;
                manifest
            }
            _ => synthesised(facts.world, app_name, facts.declares_reuse),
        };
        manifest.allow_plain_outbound(&self.plain_allowed_outbound_hosts);
        self.check_gpu(&manifest).await?;
        let mut snapshot = None;
        let (mut pre_init, key) = self.pre_init_of(runtime, &manifest, &digest);
        if let PreInit::Snapshot { cached } = &mut pre_init {
            let found = runtime.cache.lookup(&runtime.engine, &key);
            *cached = found.is_some();
            let component = match found {
                Some(component) => component,
                None => self.snapshot(&bytes, &manifest.app).await?,
            };
            prepared = world::prepare(&runtime.engine, &runtime.linker, &component)?;
            if !*cached {
                snapshot = Some((key.clone(), component));
            }
        }
        // Only components that passed every check leave a trace on disk.
        if described {
            runtime.cache.save_manifest(&digest, &manifest);
        }
        let saves = [
            (outcome == CacheOutcome::Compiled).then(|| (digest.clone(), component)),
            snapshot,
        ];
        for (key, component) in saves.into_iter().flatten() {
            let cache = runtime.cache.clone();
            let _ = tokio::task::spawn_blocking(move || cache.save(&key, &component)).await;
        }
        self.runtime.cache.save_facts(&digest, &facts);
        let loaded = self.assemble(
            runtime,
            manifest,
            (digest, outcome, started),
            pre_init,
            facts,
            key,
        );
        self.resident.fill(&loaded.code, prepared);
        Ok(loaded)
    }

    /// How `manifest`'s init work reaches its instances (a snapshot as if cached), and
    /// the cache key of the code they run.
    fn pre_init_of(
        &self,
        runtime: &Runtime,
        manifest: &AppManifest,
        digest: &str,
    ) -> (PreInit, String) {
        if !manifest.pre_init {
            return (PreInit::None, digest.to_owned());
        }
        // The snapshotter runs on the engine without component-model async, so a guest
        // with async handlers runs its init work in each instance instead.
        let plain_engine = std::ptr::eq(runtime, &self.runtime);
        if self.config.pre_init_snapshots && plain_engine {
            (PreInit::Snapshot { cached: true }, format!("{digest}-init"))
        } else {
            (PreInit::EachInstance, digest.to_owned())
        }
    }

    /// A component with its pools registered and an empty code slot; `origin` is its
    /// digest, where its code came from and when loading started; `key` its native code's
    /// cache key.
    fn assemble(
        &self,
        runtime: &Runtime,
        manifest: AppManifest,
        origin: (String, CacheOutcome, Instant),
        pre_init: PreInit,
        facts: CodeFacts,
        key: String,
    ) -> LoadedComponent {
        let (digest, cache, started) = origin;
        let source = CodeSource {
            concurrent: facts.concurrent,
            snapshot: matches!(pre_init, PreInit::Snapshot { .. }),
            key,
        };
        let warm = self.pools.register(&manifest.app, manifest.endpoints.len());
        let code = self.resident.slot(source, &warm);
        let services = Arc::new(workers::Workers::new(&manifest.app, &self.metrics));
        let typed = Arc::new(workers::Workers::new(&manifest.app, &self.metrics));
        self.pools.register_concurrent(&services);
        self.pools.register_concurrent(&typed);
        let functions = Arc::new(workers::Workers::new(&manifest.app, &self.metrics));
        self.pools.register_concurrent(&functions);
        LoadedComponent {
            manifest,
            digest,
            cache,
            pre_init,
            load_time: started.elapsed(),
            code,
            world: facts.world,
            serves_async: facts.serves_async,
            wasm_engine: runtime.engine.clone(),
            warm,
            services,
            typed,
            functions,
            batches: Default::default(),
            endpoint_batches: Default::default(),
            web_server: web_server::WebServerSlot::default(),
            context: std::sync::OnceLock::new(),
        }
    }

    /// The native code of `bytes`: mapped from the cache, or compiled now.
    async fn compiled(
        &self,
        runtime: &Runtime,
        digest: &str,
        bytes: Bytes,
    ) -> Result<(Component, CacheOutcome), LoadError> {
        let (engine, cache, key) = (
            runtime.engine.clone(),
            runtime.cache.clone(),
            digest.to_owned(),
        );
        let hit = tokio::task::spawn_blocking(move || cache.lookup(&engine, &key)).await?;
        if let Some(component) = hit {
            self.metrics.cache_hits.inc();
            return Ok((component, CacheOutcome::Hit));
        }
        let component = self.compile(runtime, bytes).await?;
        Ok((component, CacheOutcome::Compiled))
    }

    /// Compiles `bytes` with Cranelift off the async workers (it is CPU-bound), counted in
    /// the compile metrics.
    pub(super) async fn compile(
        &self,
        runtime: &Runtime,
        bytes: impl Into<Bytes>,
    ) -> Result<Component, LoadError> {
        let bytes: Bytes = bytes.into();
        let (engine, metrics) = (runtime.engine.clone(), self.metrics.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let compiled = ArtifactCache::compile(&engine, &bytes);
            metrics.compiles.inc();
            metrics
                .compile_seconds
                .observe(started.elapsed().as_secs_f64());
            compiled
        })
        .await?
    }

    /// Runs the init work of `bytes` once and compiles the snapshot of its result.
    pub(super) async fn snapshot(&self, bytes: &[u8], app: &str) -> Result<Component, LoadError> {
        let started = Instant::now();
        let snapshot = self.pre_initialise(bytes, app).await?;
        let component = self.compile(&self.runtime, snapshot).await?;
        self.metrics.snapshots.inc();
        self.metrics
            .snapshot_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(app, took = ?started.elapsed(), "pre-initialised: init work baked into a snapshot");
        Ok(component)
    }

    /// The engine of WASIp3 services and guests with async handlers, made now if this is
    /// the first such component.
    pub(super) fn concurrent_runtime(&self) -> Result<&Runtime, LoadError> {
        if let Some(concurrent) = self.concurrent.get() {
            return Ok(concurrent);
        }
        let built = Runtime::new(&self.config, true)?;
        // Two first loads at once may both build one; the other is dropped.
        let runtime = self.concurrent.get_or_init(|| built);
        self.ticker.add_concurrent(&runtime.engine);
        Ok(runtime)
    }

    /// Refuses a component with an endpoint or function that declares a GPU this host
    /// cannot lend.
    async fn check_gpu(&self, manifest: &AppManifest) -> Result<(), LoadError> {
        let endpoints = manifest.endpoints.iter().map(|e| (&e.name, &e.gpu));
        let functions = manifest.functions.iter().map(|f| (&f.name, &f.gpu));
        for (name, gpu) in endpoints.chain(functions) {
            if let Some(requirement) = gpu {
                let adapter =
                    self.gpu
                        .check(requirement)
                        .await
                        .map_err(|reason| LoadError::Gpu {
                            endpoint: name.clone(),
                            requirement: requirement.clone(),
                            reason: reason.to_string(),
                        })?;
                tracing::debug!(function = %name, "GPU {requirement:?} served by {adapter}");
            }
        }
        Ok(())
    }

    /// Runs `describe` in a new instance on `engine`.
    pub(super) async fn describe(
        &self,
        engine: &wasmtime::Engine,
        exports: &world::GuestExports,
    ) -> Result<AppManifest, LoadError> {
        let (mut store, limits) = self.deploy_store(engine)?;
        let run = async {
            let instance = exports.pre.instantiate_async(&mut store).await?;
            exports
                .describe
                .load(&mut store, &instance)?
                .call_describe(&mut store)
                .await
        };
        let raw = match tokio::time::timeout(limits.timeout + TICK * 10, run).await {
            Ok(result) => result.map_err(|e| DescribeError::Failed(trapped(e, store.data())))?,
            Err(_) => return Err(DescribeError::Timeout(limits.timeout).into()),
        };
        Ok(AppManifest::try_from(raw).map_err(DescribeError::from)?)
    }

    /// Starts and drops one instance on `engine`, which maps what an instance of it
    /// touches (its code, its memory image in a pool slot) before a request waits on it.
    pub(super) async fn warm_up(
        &self,
        engine: &wasmtime::Engine,
        exports: &world::GuestExports,
    ) -> Result<(), LoadError> {
        let (mut store, limits) = self.deploy_store(engine)?;
        let run = exports.pre.instantiate_async(&mut store);
        match tokio::time::timeout(limits.timeout + TICK * 10, run).await {
            Ok(result) => result
                .map(drop)
                .map_err(|e| DescribeError::Failed(trapped(e, store.data())).into()),
            Err(_) => Err(DescribeError::Timeout(limits.timeout).into()),
        }
    }

    /// A store for work at deploy (`describe`, a warm-up): no GPU, no outbound requests,
    /// and a timeout that a guest which never finishes cannot stretch to a call's.
    fn deploy_store(
        &self,
        engine: &wasmtime::Engine,
    ) -> Result<(wasmtime::Store<super::state::InstanceState>, Limits), LoadError> {
        let limits = Limits {
            timeout: self.config.default_timeout.min(DESCRIBE_TIMEOUT),
            ..self.default_limits()
        };
        let store = self
            .new_store_with(
                engine,
                limits,
                None,
                &CallContext::default(),
                self.no_gpu("`describe` cannot use the GPU"),
                self.outbound.deny_all("deploy"),
            )
            .map_err(DescribeError::Store)?;
        Ok((store, limits))
    }
}

/// A file's name without its extension ("" when it has none).
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The manifest of a component that does not describe itself: one endpoint of the kind
/// its world serves, reused where the component declares it may be. (A guest describes
/// itself; it is never synthesised.)
fn synthesised(world: World, app_name: &str, declares_reuse: bool) -> AppManifest {
    let kind = match world {
        World::Proxy => EndpointKind::Proxy,
        World::Service => EndpointKind::Service,
        World::Command | World::Guest => EndpointKind::WebServer,
    };
    let mut manifest = AppManifest::synthesised(app_name, kind);
    if world == World::Proxy {
        for spec in &mut manifest.endpoints {
            spec.scaling.reuse = declares_reuse;
        }
    }
    manifest
}
