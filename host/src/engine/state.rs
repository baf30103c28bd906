//! What each store carries: the capability contexts of its instance (WASI built from the
//! environment, volumes and sockets; wasi:http with the outbound hooks; the call broker;
//! the GPU session), and the engine's own bookkeeping (resource table, memory cap, the
//! current call's deadline, captured output).

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::wasmhost::guest::types;
use super::context::CallContext;
use super::output::CapturedOutput;

use crate::capabilities::broker::{Broker, BrokerCtx, BrokerView};
use crate::capabilities::env::Env;
use crate::capabilities::gpu::{Gpu, GpuCtx, GpuCtxView, GpuGrant, GpuView};
use crate::capabilities::outbound::sockets::PortMapView;
use crate::capabilities::outbound::{Outbound, OutboundGrant, OutboundHooks};
use crate::capabilities::volumes::Volumes;
use crate::capabilities::{Capability, WasiSetup};

/// Bytes of guest stdout/stderr kept per call; the rest is dropped.
const OUTPUT_CAPACITY: usize = 64 * 1024;

/// Per-instance host state.
pub struct InstanceState {
    wasi: Wasi,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
    /// When the current call must end; the epoch callback traps past it.
    pub(crate) deadline: Instant,
    /// A web server's port mapping: the guest's inner port and the host port behind it.
    pub(crate) port_map: Option<(u16, u16)>,
    broker: BrokerCtx,
    /// Where the guest's output is kept besides the host's log.
    pub(crate) output: Option<std::sync::Arc<dyn super::output::OutputSink>>,
    gpu: GpuCtx,
    _live: Option<super::metrics::LiveInstance>,
    /// This instance's part in the host-wide count of instances computing for a call.
    cpu: Option<super::cpu::GuestRunning>,
    /// Its request handlers, looked up and type-checked on its first request and kept for
    /// the next ones (the lookup cost more than a small handler's whole call).
    pub(crate) exports: ExportCache,
    /// The app and function names its output was last followed under.
    pub(crate) followed: Option<std::sync::Arc<(String, String)>>,
    /// The reply of the web call it serves, where its pool waits for it to return.
    pub(crate) settles: Option<super::demand::Settles>,
}

/// An instance's typed exports, once looked up.
#[derive(Default)]
pub(crate) struct ExportCache {
    pub(crate) handler: Option<super::bindings::exports::wasmhost::guest::endpoint_handler::Guest>,
    pub(crate) proxy:
        Option<wasmtime_wasi_http::p2::bindings::exports::wasi::http::incoming_handler::Guest>,
}

impl InstanceState {
    /// State for one instance; `port_map` (inner, outer) lets a web server bind and
    /// accept on its one loopback port and nothing else.
    pub(crate) fn new(
        memory_cap_bytes: usize,
        deadline: Instant,
        port_map: Option<(u16, u16)>,
        ctx: &CallContext,
        gpu: GpuGrant,
        hooks: OutboundHooks,
    ) -> std::io::Result<Self> {
        let stdout = CapturedOutput::new(OUTPUT_CAPACITY);
        let stderr = CapturedOutput::new(OUTPUT_CAPACITY);
        // Only what each capability grants: no ambient authority.
        let mut setup = WasiSetup::default();
        Env::instance(&ctx.env, &mut setup)?;
        Volumes::instance(&ctx.mounts, &mut setup)?;
        let hooks = Outbound::instance(OutboundGrant { hooks, port_map }, &mut setup)?;
        let broker = Broker::instance(ctx.broker.clone(), &mut setup)?;
        let gpu = Gpu::instance(gpu, &mut setup)?;
        Ok(Self {
            wasi: Wasi::new(setup, &stdout, &stderr),
            http: WasiHttpCtx::new(),
            hooks,
            table: ResourceTable::new(),
            limiter: MemoryCap::new(memory_cap_bytes),
            stdout,
            stderr,
            deadline,
            port_map,
            broker,
            output: ctx.output.clone(),
            gpu,
            _live: None,
            cpu: None,
            exports: ExportCache::default(),
            followed: None,
            settles: None,
        })
    }

    /// Counts this instance in the live-instances gauge until it is dropped.
    pub(crate) fn counted(mut self, live: super::metrics::LiveInstance) -> Self {
        self._live = Some(live);
        self
    }

    /// Counts this instance in the host-wide count of instances computing for a call.
    pub(crate) fn on_cpu(mut self, running: super::cpu::GuestRunning) -> Self {
        self.cpu = Some(running);
        self
    }

    /// Notes that the guest is about to yield to the executor on an epoch tick.
    pub(crate) fn yielding(&self) {
        if let Some(cpu) = &self.cpu {
            cpu.yielding();
        }
        if let Some(settles) = &self.settles {
            settles.0.ticked();
        }
    }

    /// Watches the reply of the web call this instance starts serving, if its pool
    /// waits for it ([`super::demand::Reply`]); returns that reply.
    pub(crate) fn replying(
        &mut self,
        out: &super::demand::HandedOut,
    ) -> Option<std::sync::Arc<super::demand::Reply>> {
        let reply = out.reply()?;
        self.settles = Some(super::demand::Settles(reply.clone()));
        Some(reply)
    }

    /// The web call's response was delivered: the call is returning.
    pub(crate) fn delivered(&self) {
        if let Some(settles) = &self.settles {
            settles.0.delivered();
        }
    }

    /// What a call on this instance needs to leave the count of instances computing
    /// while it waits (`None` where the instance is not counted).
    pub(crate) fn for_call<'a>(
        &self,
        host: &'a super::cpu::GuestCpu,
    ) -> Option<super::cpu::Waits<'a>> {
        self.cpu.as_ref().and_then(|cpu| cpu.for_call(host))
    }

    /// Marks the instance handed out by its pool for a call (`true`) or back in it.
    pub(crate) fn claim(&mut self, claimed: bool) {
        if let Some(cpu) = &mut self.cpu {
            cpu.claim(claimed);
        }
    }
}

impl types::Host for InstanceState {}

impl PortMapView for InstanceState {
    fn port_map(&self) -> Option<(u16, u16)> {
        self.port_map
    }
}

impl BrokerView for InstanceState {
    fn broker(&mut self) -> &mut BrokerCtx {
        &mut self.broker
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get(&self.stdout, &self.stderr),
            table: &mut self.table,
        }
    }
}

/// An instance's WASI context, built on its first WASI call ([`WasiSetup`]).
struct Wasi {
    ctx: Option<WasiCtx>,
    /// What goes into it; `None` once it is built.
    setup: Option<WasiSetup>,
}

impl Wasi {
    /// Built on first use, unless a step of `setup` already ran (then now).
    fn new(setup: WasiSetup, stdout: &CapturedOutput, stderr: &CapturedOutput) -> Self {
        let started = setup.started();
        let mut wasi = Self {
            ctx: None,
            setup: Some(setup),
        };
        if started {
            wasi.get(stdout, stderr);
        }
        wasi
    }

    /// The context, built now if it was not yet, writing to the instance's output.
    fn get(&mut self, stdout: &CapturedOutput, stderr: &CapturedOutput) -> &mut WasiCtx {
        self.ctx.get_or_insert_with(|| {
            let (stdout, stderr) = (stdout.clone(), stderr.clone());
            self.setup.take().unwrap_or_default().build(|b| {
                b.stdout(stdout).stderr(stderr);
            })
        })
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
