//! The component's exports, generated from `wit/guest.wit` and wired to the registry.
//!
//! They live in the SDK itself, so a crate that depends on it and registers endpoints,
//! functions or apps becomes a `wasmhost:guest/sdk` component (`endpoint` without the
//! `apps` feature) with no further code.

// Generated code carries the WIT's own docs, not one on every item.
#![allow(missing_docs)]

/// Generates the bindings of `world`. The GPU import is another package of ours; its
/// bindings live here too. The records are generated once, for every target, in
/// `crate::wit`.
macro_rules! bindings {
    ($world:literal) => {
        wit_bindgen::generate!({
            path: "../wit",
            world: $world,
            with: {
                "wasmhost:gpu/compute@0.1.0": generate,
                "wasmhost:guest/types@0.1.0": crate::wit::types,
            },
        });
    };
}

// Every export and import costs each new instance its wiring, so the component exports
// only what the crate's features ask for. With `apps` it also serves ASGI- and WSGI-like
// apps and class endpoints. With async handlers it exports their component-model-async
// interfaces, which puts it on the host's concurrent engine; without them it stays off it
// (faster).
#[cfg(all(feature = "apps", not(feature = "async")))]
bindings!("wasmhost:guest/sdk");
#[cfg(all(feature = "apps", feature = "async"))]
bindings!("wasmhost:guest/sdk-async");
#[cfg(all(not(feature = "apps"), not(feature = "async")))]
bindings!("wasmhost:guest/endpoint");
#[cfg(all(not(feature = "apps"), feature = "async"))]
bindings!("wasmhost:guest/endpoint-async");

#[cfg(feature = "apps")]
mod apps;

use crate::wit::types;
use exports::wasmhost::guest::{describe, endpoint_handler, function_handler, init};

use crate::registry;

use self::wasmhost::guest::host;

/// The component's implementation of the world's exports.
struct Component;

impl describe::Guest for Component {
    fn describe() -> types::Manifest {
        registry::manifest()
    }
}

impl init::Guest for Component {
    fn initialize() {
        registry::initialize();
    }
}

impl endpoint_handler::Guest for Component {
    fn handle(endpoint: String, req: types::Request) -> types::Response {
        response_to(registry::handle(&endpoint, request_from(req)))
    }
}

impl function_handler::Guest for Component {
    fn call(name: String, input: String) -> Result<String, types::CallError> {
        crate::registry::invoke(&name, &input).map_err(call_error)
    }
}

fn call_error(err: crate::CallError) -> types::CallError {
    match err {
        crate::CallError::InvalidInput(detail) => types::CallError::InvalidInput(detail),
        crate::CallError::Failed(message) => types::CallError::Failed(message),
    }
}

fn request_from(req: types::Request) -> crate::Request {
    crate::Request {
        method: req.method,
        path: req.path,
        query: req.query,
        headers: req.headers,
        body: req.body,
        params: Vec::new(),
    }
}

fn response_to(response: crate::Response) -> types::Response {
    types::Response {
        status: response.status,
        headers: response.headers,
        body: response.body,
    }
}

#[cfg(feature = "async")]
impl exports::wasmhost::guest::endpoint_handler_async::Guest for Component {
    async fn handle(endpoint: String, req: types::Request) -> types::Response {
        response_to(registry::handle_async(&endpoint, request_from(req)).await)
    }
}

#[cfg(feature = "async")]
impl exports::wasmhost::guest::function_handler_async::Guest for Component {
    async fn call(
        name: String,
        input: String,
        context: exports::wasmhost::guest::function_handler_async::CallContext,
    ) -> Result<String, types::CallError> {
        let call = crate::CallInfo {
            call_id: context.call_id,
            attempt: context.attempt,
        };
        crate::as_call(call, registry::invoke_async(&name, input))
            .await
            .map_err(call_error)
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
