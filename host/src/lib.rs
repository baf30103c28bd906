//! wasmhost: runs WebAssembly components in a sandbox and serves them over HTTP.
//!
//! Layers, each a folder with one public entry type, imports pointing down only:
//! [`cli`] → [`gateway`] ([`gateway::Gateway`]) → [`shapes`] ([`shapes::WebApp`]) →
//! [`engine`] ([`engine::Engine`]) → [`capabilities`] ([`capabilities::gpu::Gpu`]).

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
