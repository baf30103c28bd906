//! What each store carries: WASI and wasi:http contexts, the resource table, the memory
//! cap, the current call's deadline, captured output and the store's GPU session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::wasmhost::guest::{host, types};
use super::context::{CallBroker, CallContext, GuestCallState};
use super::output::CapturedOutput;

use crate::capabilities::gpu::{GpuCtx, GpuCtxView, GpuView};

/// Bytes of guest stdout/stderr kept per call; the rest is dropped.
const OUTPUT_CAPACITY: usize = 64 * 1024;

/// Per-instance host state.
pub struct InstanceState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundPolicy,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
    /// When the current call must end; the epoch callback traps past it.
    pub(crate) deadline: Instant,
    /// A web server's port mapping: the guest's inner port and the host port behind it.
    pub(crate) port_map: Option<(u16, u16)>,
    broker: Option<Arc<dyn CallBroker>>,
    /// Where the guest's output is kept besides the host's log.
    pub(crate) output: Option<Arc<dyn super::output::OutputSink>>,
    gpu: GpuCtx,
    _live: Option<super::metrics::LiveInstance>,
}

impl InstanceState {
    /// State for one instance; `port_map` (inner, outer) lets a web server bind and
    /// accept on its one loopback port and nothing else.
    pub(crate) fn new(
        memory_cap_bytes: usize,
        deadline: Instant,
        port_map: Option<(u16, u16)>,
        ctx: &CallContext,
        gpu: GpuCtx,
    ) -> std::io::Result<Self> {
        let stdout = CapturedOutput::new(OUTPUT_CAPACITY);
        let stderr = CapturedOutput::new(OUTPUT_CAPACITY);
        // No preopens, no network, no inherited env: a guest holds no ambient authority.
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .envs(&ctx.env);
        // Volumes are the only directories a guest sees; cap-std confines it to them.
        for mount in &ctx.mounts {
            builder
                .preopened_dir(&mount.host, &mount.guest, FsPerms::ReadWrite)
                .map_err(|e| {
                    std::io::Error::other(format!("cannot mount {}: {e}", mount.host.display()))
                })?;
        }
        if let Some((_, outer)) = port_map {
            builder
                .allow_tcp(true)
                .socket_addr_check(move |addr, usage| {
                    let ok = super::web_server::allowed(addr, usage, outer);
                    if !ok {
                        tracing::warn!(%addr, ?usage, "refused a socket use by a web server guest");
                    }
                    Box::pin(async move { ok })
                });
        }
        let wasi = builder.build();
        Ok(Self {
            wasi,
            http: WasiHttpCtx::new(),
            hooks: OutboundPolicy,
            table: ResourceTable::new(),
            limiter: MemoryCap::new(memory_cap_bytes),
            stdout,
            stderr,
            deadline,
            port_map,
            broker: ctx.broker.clone(),
            output: ctx.output.clone(),
            gpu,
            _live: None,
        })
    }

    /// Counts this instance in the live-instances gauge until it is dropped.
    pub(crate) fn counted(mut self, live: super::metrics::LiveInstance) -> Self {
        self._live = Some(live);
        self
    }
}

impl types::Host for InstanceState {}

const NO_BROKER: &str = "calls to other functions are only available on a wasmhost server";

impl host::Host for InstanceState {
    async fn spawn(
        &mut self,
        name: String,
        input: String,
    ) -> wasmtime::Result<Result<String, String>> {
        Ok(match &self.broker {
            Some(b) => b.spawn(name, input).await,
            None => Err(NO_BROKER.into()),
        })
    }

    async fn poll(
        &mut self,
        call_id: String,
        timeout_ms: u64,
    ) -> wasmtime::Result<Result<types::CallState, String>> {
        let Some(b) = &self.broker else {
            return Ok(Err(NO_BROKER.into()));
        };
        // A guest may not park a host task for longer than a day.
        let timeout = Duration::from_millis(timeout_ms.min(86_400_000));
        Ok(b.poll(call_id, timeout).await.map(|state| match state {
            GuestCallState::Pending => types::CallState::Pending,
            GuestCallState::Success(r) => types::CallState::Success(r),
            GuestCallState::Failure(m) => types::CallState::Failure(m),
        }))
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

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outbound `wasi:http` requests: guests hold no network authority, so every request is
/// refused with `HTTP-request-denied` (an allow-list belongs to the capabilities layer).
struct OutboundPolicy;

impl wasmtime_wasi_http::WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: hyper::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    hyper::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        tracing::warn!(uri = %request.uri(), "refused an outbound HTTP request from a guest");
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
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
