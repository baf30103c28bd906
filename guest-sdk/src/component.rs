//! The component's exports, generated from `wit/guest.wit` and wired to the registry.
//!
//! They live in the SDK itself, so a crate that depends on it and registers endpoints
//! becomes a `wasmhost:guest/endpoint` component with no further code.

wit_bindgen::generate!({
    path: "../wit",
    world: "wasmhost:guest/endpoint",
    // The GPU import is another package of ours; its bindings live here too.
    with: { "wasmhost:gpu/compute@0.1.0": generate },
});

use self::wasmhost::guest::types;
use exports::wasmhost::guest::{describe, endpoint_handler};

/// The component's implementation of the world's exports.
struct Component;

impl describe::Guest for Component {
    fn describe() -> types::Manifest {
        let manifest = crate::registry::manifest();
        types::Manifest {
            app: manifest.app,
            sdk_version: manifest.sdk_version,
            endpoints: manifest
                .endpoints
                .into_iter()
                .map(|e| types::EndpointInfo {
                    name: e.name,
                    method: e.method,
                    label: e.label,
                    docs: e.docs,
                    requires_proxy_auth: e.requires_proxy_auth,
                    custom_domains: e.custom_domains,
                    summary: e.summary,
                    args_schema: e.args_schema,
                    result_schema: e.result_schema,
                    timeout_ms: e.timeout_ms,
                    memory_mib: e.memory_mib,
                    gpu: e.gpu,
                })
                .collect(),
        }
    }
}

impl endpoint_handler::Guest for Component {
    fn handle(endpoint: String, req: types::Request) -> types::Response {
        let request = crate::Request {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            body: req.body,
        };
        let response = crate::registry::handle(&endpoint, request);
        types::Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

export!(Component);
