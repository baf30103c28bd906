//! Capabilities: what guests may import beyond computing, one folder each with one
//! public entry type, owning its configuration and tested alone. Each implements
//! [`Capability`], the one lifecycle (Spin's factors; wasmtime-wasi-http's view/hooks
//! pattern), and the engine goes through that trait only:
//!
//! 1. **link once** ([`Capability::link`]): its WIT interfaces go into the engine's linker
//!    when the engine starts;
//! 2. **check and configure per app at deploy** ([`Capability::configure`]): what an
//!    endpoint or function declares ([`Declared`]) is checked, a bad declaration refused
//!    with a typed error;
//! 3. **build per-instance state** ([`Capability::instance`]): from what the layer above
//!    grants the call, a context the engine's `InstanceState` bundles (or additions to the
//!    instance's WASI context, [`WasiSetup`]: environment, mounts, sockets).
//!
//! - [`env`](mod@env) ([`env::Env`]): environment variables and secrets of a call.
//! - [`volumes`] ([`volumes::Volumes`]): named directories mounted into functions.
//! - [`outbound`] ([`outbound::Outbound`]): the allow-list of outgoing `wasi:http`
//!   requests, and the sockets of `web_server` guests ([`outbound::sockets`]).
//! - [`broker`] ([`broker::BrokerCtx`]): a guest's `spawn`/`poll` of its app's functions.
//! - [`gpu`] ([`gpu::Gpu`]): WGSL compute kernels on the host's GPU through wgpu.

pub mod broker;
pub mod env;
pub mod gpu;
pub mod outbound;
pub mod volumes;

use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use crate::manifest::{EndpointSpec, FunctionSpec, VolumeMount};

/// Store data that offers the view each capability's imports work on: WASI (environment,
/// volumes, sockets), `wasi:http` with the outbound hooks, the broker, the GPU.
pub trait CapabilityViews:
    wasmtime_wasi::WasiView
    + wasmtime_wasi_http::WasiHttpView
    + broker::BrokerView
    + gpu::GpuView
    + outbound::sockets::PortMapView
    + Send
    + 'static
{
}

impl<T> CapabilityViews for T where
    T: wasmtime_wasi::WasiView
        + wasmtime_wasi_http::WasiHttpView
        + broker::BrokerView
        + gpu::GpuView
        + outbound::sockets::PortMapView
        + Send
        + 'static
{
}

/// The lifecycle of a capability (Spin's `Factor`: init, configure_app, prepare).
pub trait Capability {
    /// What deploy's check keeps of one endpoint's or function's declaration.
    type Config;
    /// Why a declaration is refused at deploy.
    type ConfigError: std::error::Error + Send + Sync + 'static;
    /// What the layer above grants one instance (secret values, mounted directories, the
    /// call broker, a GPU session, ...).
    type Grant<'a>;
    /// What one instance holds of it (`()` when it only adds to the instance's WASI
    /// context).
    type Instance;

    /// Step 1, once when the engine starts: adds its interfaces to `linker` (and their
    /// WASIp3 versions when `p3`, for an engine that runs component-model-async guests).
    fn link<T: CapabilityViews>(linker: &mut Linker<T>, p3: bool) -> wasmtime::Result<()>;

    /// Step 2, per app at deploy: checks what one endpoint or function declares.
    fn configure(declared: &Declared<'_>) -> Result<Self::Config, Self::ConfigError>;

    /// Step 3, per instance: its state, built from the call's grant; what is part of WASI
    /// goes into `wasi` (applied when the guest first calls WASI). Fails only on the host's
    /// own I/O (a volume's directory).
    fn instance(grant: Self::Grant<'_>, wasi: &mut WasiSetup) -> std::io::Result<Self::Instance>;
}

/// What the capabilities add to one instance's WASI context. The context is built from it
/// on the guest's first WASI call ([`WasiSetup::build`]): building one seeds two random
/// generators twice over (`WasiCtxBuilder::new` and `build`), some 0.3 µs of a typed
/// endpoint's 5 µs instantiation, and most typed endpoints never call WASI. A step that
/// can fail on the host's own I/O runs at once ([`WasiSetup::now`]), so its error is the
/// instantiation's, as before.
#[derive(Default)]
pub struct WasiSetup {
    /// The builder, once a step had to run at once.
    builder: Option<WasiCtxBuilder>,
    /// Steps that wait for the context to be built.
    later: Vec<WasiStep>,
}

/// One addition to a WASI context, made when it is built.
type WasiStep = Box<dyn FnOnce(&mut WasiCtxBuilder) + Send>;

impl WasiSetup {
    /// Adds `step` to the context, when it is built.
    pub fn later(&mut self, step: impl FnOnce(&mut WasiCtxBuilder) + Send + 'static) {
        match &mut self.builder {
            Some(builder) => step(builder),
            None => self.later.push(Box::new(step)),
        }
    }

    /// Runs `step` on the builder now (the context is then built with the instance).
    pub fn now(
        &mut self,
        step: impl FnOnce(&mut WasiCtxBuilder) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let builder = self.builder.get_or_insert_with(|| {
            let mut builder = WasiCtxBuilder::new();
            for earlier in self.later.drain(..) {
                earlier(&mut builder);
            }
            builder
        });
        step(builder)
    }

    /// Whether a step ran at once, so the context should be built with the instance.
    pub fn started(&self) -> bool {
        self.builder.is_some()
    }

    /// The context: every step on one builder, then `last` (the instance's own output
    /// streams).
    pub fn build(self, last: impl FnOnce(&mut WasiCtxBuilder)) -> WasiCtx {
        let mut builder = self.builder.unwrap_or_default();
        for step in self.later {
            step(&mut builder);
        }
        last(&mut builder);
        builder.build()
    }
}

/// What one endpoint or function asks of the capabilities, as its manifest states it.
#[derive(Debug, Clone, Copy)]
pub struct Declared<'a> {
    /// `"endpoint"` or `"function"`.
    pub what: &'static str,
    /// Its name.
    pub name: &'a str,
    /// Secrets whose keys become its environment variables.
    pub secrets: &'a [String],
    /// Volumes mounted into it.
    pub volumes: &'a [VolumeMount],
    /// Where its outgoing HTTP requests may go.
    pub allowed_outbound_hosts: &'a [String],
    /// The GPU it needs.
    pub gpu: Option<&'a str>,
}

impl<'a> From<&'a EndpointSpec> for Declared<'a> {
    fn from(spec: &'a EndpointSpec) -> Self {
        Self {
            what: "endpoint",
            name: &spec.name,
            secrets: &[],
            volumes: &[],
            allowed_outbound_hosts: &spec.allowed_outbound_hosts,
            gpu: spec.gpu.as_deref(),
        }
    }
}

impl<'a> From<&'a FunctionSpec> for Declared<'a> {
    fn from(spec: &'a FunctionSpec) -> Self {
        Self {
            what: "function",
            name: &spec.name,
            secrets: &spec.secrets,
            volumes: &spec.volumes,
            allowed_outbound_hosts: &spec.allowed_outbound_hosts,
            gpu: spec.gpu.as_deref(),
        }
    }
}

/// What the operator sets for the capabilities (the engine's own settings are
/// `engine::EngineConfig`).
#[derive(Debug, Clone, Default)]
pub struct CapabilitiesConfig {
    /// Which GPUs guests may use and each call's GPU budget.
    pub gpu: gpu::GpuConfig,
    /// Bounds of guests' outgoing HTTP requests.
    pub outbound: outbound::OutboundLimits,
    /// Where components without `describe` (plain `wasi:http` and `wasi:cli` ones) may
    /// send outgoing requests (`--allow-outbound`).
    pub plain_allowed_outbound_hosts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn wasi_steps_wait_for_the_build_unless_one_must_run_now() {
        let ran = Arc::new(AtomicUsize::new(0));
        let step = |ran: &Arc<AtomicUsize>| {
            let ran = ran.clone();
            move |_: &mut WasiCtxBuilder| {
                ran.fetch_add(1, Ordering::SeqCst);
            }
        };
        let mut lazy = WasiSetup::default();
        lazy.later(step(&ran));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert!(!lazy.started());
        let _ = lazy.build(step(&ran));
        assert_eq!(ran.load(Ordering::SeqCst), 2, "the step, then the last one");

        ran.store(0, Ordering::SeqCst);
        let mut eager = WasiSetup::default();
        eager.later(step(&ran));
        eager.now(|_| Ok(())).unwrap();
        assert!(eager.started());
        assert_eq!(ran.load(Ordering::SeqCst), 1, "earlier steps run first");
        eager.later(step(&ran));
        assert_eq!(
            ran.load(Ordering::SeqCst),
            2,
            "after a step ran now, at once"
        );
        let failed = eager.now(|_| Err(std::io::Error::other("no such directory")));
        assert!(failed.is_err());
        let _ = eager.build(|_| ());
        assert_eq!(ran.load(Ordering::SeqCst), 2, "no step runs twice");
    }
}
