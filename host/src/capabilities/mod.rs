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
//!    instance's `WasiCtx`: environment, mounts, sockets).
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
use wasmtime_wasi::WasiCtxBuilder;

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
    /// goes into `wasi`. Fails only on the host's own I/O (a volume's directory).
    fn instance(
        grant: Self::Grant<'_>,
        wasi: &mut WasiCtxBuilder,
    ) -> std::io::Result<Self::Instance>;
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
