//! Capabilities: what guests may import beyond WASI. Each folder is self-contained, with
//! one public entry type the engine links into every store.
//!
//! - [`gpu`] ([`gpu::Gpu`]): WGSL compute kernels on the host's GPU through wgpu.
//! - [`outbound`] ([`outbound::Outbound`]): the allow-list of outgoing `wasi:http` requests.

pub mod gpu;
pub mod outbound;
