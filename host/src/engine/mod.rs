//! The wasmtime engine: validation, the native-code cache, instance creation, and the
//! time and memory bounds every guest call runs under. Knows nothing of HTTP routing.

mod bindings;
mod cache;
mod error;
mod manifest;
mod state;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, PoolingAllocationConfig, Store, UpdateDeadline};

use crate::capabilities::gpu::{Gpu, GpuConfig, GpuCtx};
use bindings::{Endpoint, EndpointPre};
pub use bindings::{Request, Response};
pub use cache::CacheOutcome;
pub use error::{CallError, LoadError};
pub use manifest::{AppManifest, EndpointSpec, is_dns_label};
use state::InstanceState;

/// How often the epoch advances; the granularity of timeouts and of guest yields.
const TICK: Duration = Duration::from_millis(10);

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled native code is cached.
    pub cache_dir: PathBuf,
    /// Time limit of a call when the endpoint states none.
    pub default_timeout: Duration,
    /// Memory cap of an instance when the endpoint states none, in MiB.
    pub default_memory_mib: u32,
    /// The most instances alive at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// Which GPUs guests may use and each call's GPU budget.
    pub gpu: GpuConfig,
}

impl EngineConfig {
    /// Defaults with the given cache directory.
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            default_timeout: Duration::from_secs(300),
            default_memory_mib: 256,
            max_instances: 500,
            gpu: GpuConfig::default(),
        }
    }
}

/// One wasmtime engine shared by every component the host serves.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<InstanceState>,
    cache: cache::ArtifactCache,
    config: EngineConfig,
    gpu: Gpu,
    ticker_stop: Arc<AtomicBool>,
}

/// A validated, compiled component ready to instantiate.
pub struct LoadedComponent {
    /// What the component says it is.
    pub manifest: AppManifest,
    /// Hex sha256 of its bytes.
    pub digest: String,
    /// Whether its native code came from the cache.
    pub cache: CacheOutcome,
    /// How long loading took (read, validate, compile or map, describe).
    pub load_time: Duration,
    pre: EndpointPre<InstanceState>,
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
    /// opened on first use).
    pub fn new(config: EngineConfig) -> Result<Self, LoadError> {
        let max_memory = (config.default_memory_mib.max(1024) as usize) << 20;
        let mut pool = PoolingAllocationConfig::new();
        let n = config.max_instances;
        pool.total_component_instances(n)
            .total_core_instances(n * 4)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(max_memory);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .memory_init_cow(true)
            .concurrency_support(false)
            .max_wasm_stack(1 << 20)
            .allocation_strategy(pool);
        let engine =
            wasmtime::Engine::new(&wasm).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        crate::capabilities::gpu::add_to_linker(&mut linker)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let gpu = Gpu::new(config.gpu.clone());
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), ticker_stop.clone());
        let cache = cache::ArtifactCache::new(config.cache_dir.clone(), &engine);
        Ok(Self {
            engine,
            linker,
            cache,
            config,
            gpu,
            ticker_stop,
        })
    }

    /// The host's GPU capability.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Reads, validates and compiles (or maps from the cache) a component file.
    pub async fn load_file(&self, path: &Path) -> Result<LoadedComponent, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.to_owned(),
                source,
            })?;
        self.load_bytes(&bytes).await
    }

    /// Validates and compiles (or maps from the cache) a component's bytes.
    pub async fn load_bytes(&self, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        let started = Instant::now();
        validate::check_header(bytes)?;
        let digest = cache::digest(bytes);
        let (component, outcome) = {
            let (engine, cache, digest) = (self.engine.clone(), self.cache.clone(), digest.clone());
            let bytes = bytes.to_vec();
            // Cranelift is CPU-bound: keep it off the async workers.
            tokio::task::spawn_blocking(move || cache.load(&engine, &digest, &bytes))
                .await
                .map_err(|e| LoadError::Compile(e.to_string()))??
        };
        let pre = self.prepare(&component)?;
        let manifest = self.describe(&pre).await?;
        self.check_gpu(&manifest).await?;
        Ok(LoadedComponent {
            manifest,
            digest,
            cache: outcome,
            load_time: started.elapsed(),
            pre,
        })
    }

    fn prepare(&self, component: &Component) -> Result<EndpointPre<InstanceState>, LoadError> {
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        validate::check_exports(&exports, &bindings::ENDPOINT_EXPORTS)?;
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::MissingImport(format!("{e:#}")))?;
        EndpointPre::new(pre).map_err(|e| LoadError::UnknownWorld {
            exports: exports.join(", "),
            expected: format!(
                "{} with matching types ({e:#})",
                bindings::ENDPOINT_EXPORTS.join(" and ")
            ),
        })
    }

    /// Refuses a component with an endpoint that declares a GPU this host cannot lend.
    async fn check_gpu(&self, manifest: &AppManifest) -> Result<(), LoadError> {
        for spec in &manifest.endpoints {
            if let Some(requirement) = &spec.gpu {
                let adapter =
                    self.gpu
                        .check(requirement)
                        .await
                        .map_err(|reason| LoadError::Gpu {
                            endpoint: spec.name.clone(),
                            requirement: requirement.clone(),
                            reason: reason.to_string(),
                        })?;
                tracing::debug!(endpoint = %spec.name, "GPU {requirement:?} served by {adapter}");
            }
        }
        Ok(())
    }

    async fn describe(&self, pre: &EndpointPre<InstanceState>) -> Result<AppManifest, LoadError> {
        let limits = self.default_limits();
        let gpu = GpuCtx::denied(&self.gpu, "`describe` cannot use the GPU");
        let mut store = self.new_store(limits, gpu);
        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .wasmhost_guest_describe()
                .call_describe(&mut store)
                .await
        };
        let raw = run
            .await
            .map_err(|e| LoadError::Describe(describe_failure(&e, &store)))?;
        raw.try_into()
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

    fn new_store(&self, limits: Limits, gpu: GpuCtx) -> Store<InstanceState> {
        let mut store = Store::new(
            &self.engine,
            InstanceState::new((limits.memory_mib as usize) << 20, gpu),
        );
        store.limiter(|s| &mut s.limiter);
        let deadline = Instant::now() + limits.timeout;
        store.set_epoch_deadline(1);
        // Yield to the executor every tick so a spinning guest cannot starve other
        // requests, and trap once the deadline has passed.
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineReached))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Runs one request through a fresh instance of `component`'s endpoint `spec`.
    pub async fn handle(
        &self,
        component: &LoadedComponent,
        spec: &EndpointSpec,
        request: Request,
    ) -> Result<Response, CallError> {
        let limits = self.limits_for(spec);
        let gpu = match spec.gpu {
            Some(_) => GpuCtx::granted(&self.gpu),
            None => GpuCtx::denied(
                &self.gpu,
                format!(
                    "endpoint {:?} does not declare a GPU; add `gpu = \"any\"` to its \
                     #[wasmhost::endpoint] attribute",
                    spec.name
                ),
            ),
        };
        let mut store = self.new_store(limits, gpu);
        let instance: Endpoint = component
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| CallError::Instantiate(format!("{e:#}")))?;
        let call = instance
            .wasmhost_guest_endpoint_handler()
            .call_handle(&mut store, &spec.name, &request);
        // The epoch callback only fires while wasm runs; a guest blocked in a host call
        // (a sleep, say) is bounded by this outer timer, with a little grace.
        let outcome = tokio::time::timeout(limits.timeout + TICK * 10, call).await;
        let app = component.manifest.app.as_str();
        forward_output(app, &spec.name, &store);
        match outcome {
            Err(_) => Err(CallError::Timeout(limits.timeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(classify(e, &store, limits)),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn spawn_ticker(engine: wasmtime::Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("wasmhost-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch thread");
}

/// Turns a failed call into the reason a user should read.
fn classify(e: wasmtime::Error, store: &Store<InstanceState>, limits: Limits) -> CallError {
    if e.downcast_ref::<DeadlineReached>().is_some() {
        return CallError::Timeout(limits.timeout);
    }
    if store.data().limiter.refused {
        return CallError::OutOfMemory {
            mib: limits.memory_mib as u64,
        };
    }
    let trap = match e.downcast_ref::<wasmtime::Trap>() {
        Some(t) => t.to_string(),
        None => format!("{e}"),
    };
    match panic_message(&store.data().stderr.contents()) {
        Some(panic) => CallError::Trap(format!("{panic} ({trap})")),
        None => CallError::Trap(trap),
    }
}

fn describe_failure(e: &wasmtime::Error, store: &Store<InstanceState>) -> String {
    match panic_message(&store.data().stderr.contents()) {
        Some(panic) => format!("{panic} ({e})"),
        None => format!("{e:#}"),
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

/// Sends what the guest printed to the host's log, one event per line.
fn forward_output(app: &str, function: &str, store: &Store<InstanceState>) {
    let data = store.data();
    for (stream, bytes) in [
        ("stdout", data.stdout.contents()),
        ("stderr", data.stderr.contents()),
    ] {
        for line in String::from_utf8_lossy(&bytes).lines() {
            tracing::info!(target: "guest", app, function, stream, "{line}");
        }
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
