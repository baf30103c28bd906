//! The component's exports, generated from `wit/guest.wit` and wired to the registry.
//!
//! They live in the SDK itself, so a crate that depends on it and registers endpoints or
//! functions becomes a `wasmhost:guest/endpoint` component with no further code.

wit_bindgen::generate!({
    path: "../wit",
    world: "wasmhost:guest/endpoint",
});

use self::wasmhost::guest::host;
use self::wasmhost::guest::types;
use exports::wasmhost::guest::{describe, endpoint_handler, function_handler};

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
                })
                .collect(),
            functions: manifest
                .functions
                .into_iter()
                .map(|f| types::FunctionInfo {
                    name: f.name,
                    summary: f.summary,
                    args_schema: f.args_schema,
                    params: f.params,
                    result_schema: f.result_schema,
                    retries: f.retries.map(|r| types::RetryPolicy {
                        max_retries: r.max_retries,
                        backoff_coefficient: r.backoff_coefficient,
                        initial_delay_ms: r.initial_delay_ms,
                        max_delay_ms: r.max_delay_ms,
                    }),
                    timeout_ms: f.timeout_ms,
                    memory_mib: f.memory_mib,
                    schedule: f.schedule,
                    secrets: f.secrets,
                    volumes: f
                        .volumes
                        .into_iter()
                        .map(|v| types::VolumeMount {
                            volume: v.volume,
                            path: v.path,
                        })
                        .collect(),
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

impl function_handler::Guest for Component {
    fn call(name: String, input: String) -> Result<String, types::CallError> {
        crate::registry::invoke(&name, &input).map_err(|err| match err {
            crate::CallError::InvalidInput(detail) => types::CallError::InvalidInput(detail),
            crate::CallError::Failed(message) => types::CallError::Failed(message),
        })
    }
}

export!(Component);

/// The host's `spawn`: queues a call of the function `name`; returns its id.
pub(crate) fn spawn(name: &str, input: &str) -> Result<String, String> {
    host::spawn(name, input)
}

/// The host's `poll`: waits at most `timeout_ms` for the call to finish.
pub(crate) fn poll(call_id: &str, timeout_ms: u64) -> Result<crate::functions::CallState, String> {
    use crate::functions::CallState;
    Ok(match host::poll(call_id, timeout_ms)? {
        types::CallState::Pending => CallState::Pending,
        types::CallState::Success(json) => CallState::Success(json),
        types::CallState::Failure(message) => CallState::Failure(message),
    })
}
