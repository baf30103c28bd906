//! wasmhost: runs WebAssembly components in a sandbox and serves them over HTTP.
//!
//! A map of the crate (DESIGN.md's layout; arrows are imports and point down only):
//!
//! ```text
//! cli ─► control ─┬─► gateway ─► shapes ─► engine ─► capabilities
//!                 ├─► functions ──────────► engine
//!                 │       └───────────────► store
//!                 └─► store
//! leaves, used from any layer: manifest (plain data), http (responses), ids
//! ```
//!
//! - [`cli`]: the `wasmhost` commands (run, serve, deploy, server, call, ...).
//! - [`control`] ([`control::ControlPlane`]): the REST control plane and deploys.
//! - [`gateway`] ([`gateway::Gateway`]): the hyper front end; routing by host, auth,
//!   limits, 303s for long requests.
//! - [`shapes`] ([`shapes::WebApp`]): request ⇄ guest calls for each endpoint shape.
//! - [`functions`] ([`functions::Functions`]): remote/spawn/map, retries, schedules.
//! - [`engine`] ([`engine::Engine`]): wasmtime, validation, the code cache, snapshots,
//!   instance pools, limits; `InstanceState` bundles the capabilities' contexts.
//! - [`capabilities`]: what guests may use, one folder each implementing
//!   [`capabilities::Capability`] (link once, configure per app at deploy, build
//!   per-instance state): [`env`] (environment and secrets), [`volumes`], [`outbound`]
//!   (HTTP allow-list, web server sockets), [`broker`] (calls to the app's functions),
//!   [`gpu`].
//! - [`store`] ([`store::Store`]): redb tables; secrets sealed at rest.
//! - Leaves: [`manifest`] (what a component describes, checked, as plain data; the guest
//!   states it as the WIT `manifest` record), [`http`] (response helpers), [`ids`].
//!
//! [`env`]: mod@capabilities::env
//! [`volumes`]: capabilities::volumes
//! [`outbound`]: capabilities::outbound
//! [`broker`]: capabilities::broker
//! [`gpu`]: capabilities::gpu

#![warn(missing_docs)]

mod anchor;
pub mod capabilities;
pub mod cli;
pub mod control;
pub mod engine;
pub mod functions;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod manifest;
pub mod shapes;
pub mod store;

/// Entry points for `cargo fuzz` (fuzz/), built only with `--cfg fuzzing`.
#[cfg(fuzzing)]
pub mod fuzzing {
    pub use crate::control::{fuzz_route, fuzz_upload_header};
    pub use crate::engine::fuzz_manifest;
    pub use crate::gateway::{fuzz_heads, fuzz_host};
}
