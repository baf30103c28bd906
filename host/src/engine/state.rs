//! What each store carries: WASI context, resource table, memory cap, captured output.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::bindings::wasmhost::guest::{host, types};
use super::context::{CallBroker, CallContext, GuestCallState};

/// Bytes of guest stdout/stderr kept per call; the rest is dropped.
const OUTPUT_CAPACITY: usize = 64 * 1024;

/// Per-instance host state.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    broker: Option<Arc<dyn CallBroker>>,
}

impl InstanceState {
    /// Fresh state; fails only when a mount's host directory cannot be opened.
    pub(crate) fn new(memory_cap_bytes: usize, ctx: &CallContext) -> std::io::Result<Self> {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        // Only what the call context grants: no network, no inherited env, and no
        // directories beyond the mounted volumes (cap-std confines the guest to them).
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .envs(&ctx.env);
        for mount in &ctx.mounts {
            builder
                .preopened_dir(&mount.host, &mount.guest, FsPerms::ReadWrite)
                .map_err(|e| {
                    std::io::Error::other(format!("cannot mount {}: {e}", mount.host.display()))
                })?;
        }
        Ok(Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: MemoryCap::new(memory_cap_bytes),
            stdout,
            stderr,
            broker: ctx.broker.clone(),
        })
    }
}

impl types::Host for InstanceState {}

const NO_BROKER: &str = "calls to other functions are only available on a wasmhost server";

impl host::Host for InstanceState {
    async fn spawn(&mut self, name: String, input: String) -> Result<String, String> {
        match &self.broker {
            Some(b) => b.spawn(name, input).await,
            None => Err(NO_BROKER.into()),
        }
    }

    async fn poll(&mut self, call_id: String, timeout_ms: u64) -> Result<types::CallState, String> {
        let Some(b) = &self.broker else {
            return Err(NO_BROKER.into());
        };
        // A guest may not park a host task for longer than a day.
        let timeout = Duration::from_millis(timeout_ms.min(86_400_000));
        Ok(match b.poll(call_id, timeout).await? {
            GuestCallState::Pending => types::CallState::Pending,
            GuestCallState::Success(r) => types::CallState::Success(r),
            GuestCallState::Failure(m) => types::CallState::Failure(m),
        })
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
