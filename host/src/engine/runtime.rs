//! The wasmtime engines behind [`Engine`](super::Engine), each with its linker and
//! native-code cache. WASIp2 components and wasmhost guests run on one without
//! component-model async: with it, every call goes through wasmtime's concurrent event
//! loop and a fresh instance per request costs about 40 % more. WASIp3 services run on a
//! second one with it, made when the first such component loads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, PoolingAllocationConfig};

use super::activity::Activity;
use super::state::InstanceState;
use super::{EarlyEngine, EngineConfig, LoadError, TICK, bindings, cache, incremental};
use crate::capabilities::Capability;
use crate::capabilities::broker::Broker;
use crate::capabilities::env::Env;
use crate::capabilities::gpu::Gpu;
use crate::capabilities::outbound::Outbound;
use crate::capabilities::volumes::Volumes;

/// One wasmtime engine with what is built on it.
pub(crate) struct Runtime {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) linker: Linker<InstanceState>,
    pub(crate) cache: cache::ArtifactCache,
}

impl Runtime {
    /// Builds an engine (async, epoch interruption, pooling allocator with copy-on-write
    /// memory images) and its linker: WASI 0.2, wasmhost's interfaces and `wasmhost:gpu`,
    /// plus WASI 0.3 when `concurrent`. Its epoch is advanced by a [`Ticker`].
    pub(crate) fn new(config: &EngineConfig, concurrent: bool) -> Result<Self, LoadError> {
        Self::with_early(config, concurrent, |_| {})
    }

    /// [`Runtime::new`], handing `early` the engine and its cache before the linker is
    /// built (a third of the time the engine takes).
    pub(crate) fn with_early(
        config: &EngineConfig,
        concurrent: bool,
        early: impl FnOnce(EarlyEngine),
    ) -> Result<Self, LoadError> {
        // Cranelift's cache keys carry its version and the target's flags: one directory
        // serves every engine and every wasmhost build.
        let functions = Arc::new(incremental::FunctionCache::new(
            config.cache_dir.join("functions"),
        ));
        let engine = wasmtime::Engine::new(&wasm_config(config, concurrent, functions.clone()))
            .map_err(LoadError::Compile)?;
        let cache = cache::ArtifactCache::new(config.cache_dir.clone(), &engine, functions);
        early(EarlyEngine::new(&engine, &cache));
        let linker = link(&engine, concurrent).map_err(LoadError::Compile)?;
        Ok(Self {
            engine,
            linker,
            cache,
        })
    }
}

/// Bytes of each table slot zeroed in place when its instance ends; the rest of a larger
/// table is decommitted.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Bytes of an ended instance's dirtied linear memory reset in place when the kernel
/// reports which pages were written (`PAGEMAP_SCAN`, Linux 6.7+); dirtied pages past
/// that are decommitted.
const MEMORY_KEEP_RESIDENT: usize = 256 << 10;

/// The engine's settings.
///
/// An ended instance's slot is reset for the next one. Giving its pages back to the
/// kernel (`madvise`) makes the kernel flush every other core's TLB for this process —
/// an interrupt to each core running a serving thread, costly on a VM — and the next
/// instance fault the pages in again: ~110 µs of a per-request call's ~140 µs, on a
/// small guest. So the few pages a call dirtied are reset in place: tables always (a
/// few KiB), memory where the kernel can say which pages were written (zeroing blind
/// would make pages resident that the guest never touched). Bounded, because memory
/// must be given back after large bodies
/// (`tests/hostile.rs::memory_is_given_back_after_large_bodies`): a slot keeps at most
/// `MEMORY_KEEP_RESIDENT` + `TABLE_KEEP_RESIDENT` per table.
fn wasm_config(
    config: &EngineConfig,
    concurrent: bool,
    functions: Arc<incremental::FunctionCache>,
) -> Config {
    let max_memory = (config.default_memory_mib.max(1024) as usize) << 20;
    let mut pool = PoolingAllocationConfig::new();
    let n = config.max_instances;
    pool.total_component_instances(n)
        // A componentize-py component instantiates some 20 core modules (libc, libpython,
        // each native extension, glue); this count only bounds metadata allocated on
        // demand, so it is sized for them rather than failing Python guests at ~50 live
        // instances.
        .total_core_instances(n * 32)
        .total_memories(n * 2)
        .total_tables(n * 4)
        // A store keeps its fiber stack while it lives, so every live instance needs one.
        .total_stacks(n)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .max_memory_size(max_memory);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT);
    }
    let mut wasm = Config::new();
    wasm.epoch_interruption(true)
        .memory_init_cow(true)
        .concurrency_support(concurrent)
        .max_wasm_stack(1 << 20)
        .allocation_strategy(pool);
    if concurrent {
        wasm.wasm_component_model_async(true);
    }
    wasm.enable_incremental_compilation(functions)
        .expect("the compiler is enabled");
    wasm
}

fn link(engine: &wasmtime::Engine, concurrent: bool) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    // WASI is the base every capability's WASI part (environment, volumes, sockets) is in.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    if concurrent {
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    }
    use bindings::wasmhost::guest::{asgi_channel, wsgi_io};
    asgi_channel::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    wsgi_io::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    Env::link(&mut linker, concurrent)?;
    Volumes::link(&mut linker, concurrent)?;
    Outbound::link(&mut linker, concurrent)?;
    Broker::link(&mut linker, concurrent)?;
    Gpu::link(&mut linker, concurrent)?;
    Ok(linker)
}

/// The one thread that advances the engines' epochs (deadlines and the guests' yields
/// count in its ticks): the first engine's, and the WASIp3 engine's once it is made. A
/// thread for each would wake twice as often for the same ticks.
pub(crate) struct Ticker {
    stop: AtomicBool,
    concurrent: OnceLock<wasmtime::Engine>,
}

impl Ticker {
    /// Starts ticking `engine` while `activity` says a store may be running a guest.
    pub(crate) fn start(engine: wasmtime::Engine, activity: Arc<Activity>) -> Arc<Self> {
        let ticker = Arc::new(Self {
            stop: AtomicBool::new(false),
            concurrent: OnceLock::new(),
        });
        let this = ticker.clone();
        std::thread::Builder::new()
            .name("wasmhost-epoch".into())
            .spawn(move || {
                activity.register_sleeper();
                while !this.stop.load(Ordering::Relaxed) {
                    // Only a store out of its pool can be running a guest.
                    if activity.nap_while_quiet() {
                        continue;
                    }
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                    if let Some(concurrent) = this.concurrent.get() {
                        concurrent.increment_epoch();
                    }
                }
            })
            .expect("spawning the epoch thread");
        ticker
    }

    /// Ticks the WASIp3 engine too (the first one registered; there is one).
    pub(crate) fn add_concurrent(&self, engine: &wasmtime::Engine) {
        let _ = self.concurrent.set(engine.clone());
    }

    /// Ends the thread at its next tick.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether `bytes` (a component) exports `wasi:http/handler@0.3.x` (a WASIp3 service) or
/// wasmhost's async handlers at its top level: it needs the concurrent engine.
pub(crate) fn needs_concurrency(bytes: &[u8]) -> bool {
    let concurrent = |name: &str| {
        name.starts_with(bindings::HANDLER_P3_PREFIX)
            || name == bindings::ENDPOINT_HANDLER_ASYNC
            || name == bindings::FUNCTION_HANDLER_ASYNC
    };
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::ModuleSection { .. })
            | Ok(wasmparser::Payload::ComponentSection { .. }) => depth += 1,
            Ok(wasmparser::Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(wasmparser::Payload::ComponentExportSection(exports)) if depth == 0 => {
                let found = exports
                    .into_iter()
                    .any(|e| e.is_ok_and(|e| concurrent(e.name.name)));
                if found {
                    return true;
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}
