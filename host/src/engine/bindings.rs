//! Host bindings generated from `wit/`, the single source of the guest ABI.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasmhost:guest/endpoint",
    exports: { default: async },
    with: { "wasmhost:gpu": crate::capabilities::gpu::bindings::wasmhost::gpu },
});

pub use self::wasmhost::guest::types::{Manifest, Request, Response};

/// Interface names a component must export to be served as the `endpoint` world.
pub const ENDPOINT_EXPORTS: [&str; 2] = [
    "wasmhost:guest/describe@0.1.0",
    "wasmhost:guest/endpoint-handler@0.1.0",
];
