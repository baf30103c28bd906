//! What each store carries: WASI context, resource table, memory cap, captured output,
//! and the store's GPU session.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::gpu::{GpuCtx, GpuCtxView, GpuView};

/// Bytes of guest stdout/stderr kept per call; the rest is dropped.
const OUTPUT_CAPACITY: usize = 64 * 1024;

/// Per-instance host state.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    gpu: GpuCtx,
}

impl InstanceState {
    pub(crate) fn new(memory_cap_bytes: usize, gpu: GpuCtx) -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        // No preopens, no network, no inherited env: a guest holds no ambient authority.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap::new(memory_cap_bytes),
            stdout,
            stderr,
            gpu,
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl GpuView for InstanceState {
    fn gpu(&mut self) -> GpuCtxView<'_> {
        GpuCtxView {
            ctx: &mut self.gpu,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers whether the cap refused a growth, so a trap
/// that follows can be reported as "out of memory" instead of a bare `unreachable`.
pub(crate) struct MemoryCap {
    max_bytes: usize,
    pub(crate) refused: bool,
}

impl MemoryCap {
    fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            refused: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_bytes && maximum.is_none_or(|m| desired <= m);
        if !allowed {
            self.refused = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000 && maximum.is_none_or(|m| desired <= m))
    }
}
