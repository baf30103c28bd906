//! Capabilities: what guests may import beyond computing, one folder each with one
//! public entry type, owning its configuration and tested alone. Each follows the same
//! lifecycle (Spin's factors; wasmtime-wasi-http's view/hooks pattern):
//!
//! 1. **link once**: its WIT interfaces go into the engine's linker when the engine starts
//!    (`gpu::add_to_linker`; WASI, `wasi:http` and the broker's `wasmhost:guest/host`
//!    through the engine's bindings);
//! 2. **check and configure per app at deploy**: a `configure` function refuses a bad
//!    declaration with a clear reason ([`outbound::Outbound::configure`],
//!    [`volumes::Volumes::configure`], the GPU's adapter check);
//! 3. **build per-instance state**: a context the engine's `InstanceState` bundles
//!    ([`outbound::OutboundHooks`], [`broker::BrokerCtx`], [`gpu::GpuCtx`]; the
//!    environment, mounts and sockets become the instance's `WasiCtx`).
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
