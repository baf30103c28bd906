//! The component's exports, generated from `wit/guest.wit` and wired to the registry.
//!
//! They live in the SDK itself, so a crate that depends on it and registers endpoints,
//! functions or apps becomes a `wasmhost:guest/sdk` component with no further code.

// Generated code carries the WIT's own docs, not one on every item.
#![allow(missing_docs)]

#[cfg(not(feature = "async"))]
wit_bindgen::generate!({
    path: "../wit",
    world: "wasmhost:guest/sdk",
    // The GPU import is another package of ours; its bindings live here too. The
    // records are generated once, for every target, in `crate::wit`.
    with: {
        "wasmhost:gpu/compute@0.1.0": generate,
        "wasmhost:guest/types@0.1.0": crate::wit::types,
    },
});

// With async handlers the component also exports their component-model-async interfaces,
// which puts it on the host's concurrent engine; without them it stays off it (faster).
#[cfg(feature = "async")]
wit_bindgen::generate!({
    path: "../wit",
    world: "wasmhost:guest/sdk-async",
    with: {
        "wasmhost:gpu/compute@0.1.0": generate,
        "wasmhost:guest/types@0.1.0": crate::wit::types,
    },
});

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use self::wasmhost::guest::{asgi_channel, asgi_types, wsgi_io};
use crate::wit::types;
use exports::wasmhost::guest::{
    asgi_app, describe, endpoint_handler, function_handler, init, lifecycle, wsgi_app,
};

use crate::registry::{self, Kind};

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

impl lifecycle::Guest for Component {
    fn enter() -> Result<(), String> {
        registry::enter()
    }

    fn exit() {
        registry::exit()
    }
}

thread_local! {
    /// The apps built in this instance, by endpoint name (built once per instance).
    static ASGI_APPS: RefCell<HashMap<String, Rc<crate::asgi::App>>> = RefCell::default();
    static WSGI_APPS: RefCell<HashMap<String, Rc<crate::wsgi::App>>> = RefCell::default();
}

fn asgi_app(name: &str) -> Option<Rc<crate::asgi::App>> {
    if let Some(app) = ASGI_APPS.with(|apps| apps.borrow().get(name).cloned()) {
        return Some(app);
    }
    let Kind::Asgi(factory) = registry::find(name)?.kind else {
        return None;
    };
    let app = Rc::new(factory());
    ASGI_APPS.with(|apps| apps.borrow_mut().insert(name.to_owned(), app.clone()));
    Some(app)
}

fn wsgi_app(name: &str) -> Option<Rc<crate::wsgi::App>> {
    if let Some(app) = WSGI_APPS.with(|apps| apps.borrow().get(name).cloned()) {
        return Some(app);
    }
    let Kind::Wsgi(factory) = registry::find(name)?.kind else {
        return None;
    };
    let app = Rc::new(factory());
    WSGI_APPS.with(|apps| apps.borrow_mut().insert(name.to_owned(), app.clone()));
    Some(app)
}

impl asgi_app::Guest for Component {
    fn startup(app: String) -> Result<(), String> {
        asgi_app(&app)
            .ok_or_else(|| format!("no ASGI app named `{app}`"))?
            .startup()
    }

    fn shutdown(app: String) {
        if let Some(app) = asgi_app(&app) {
            app.shutdown();
        }
    }

    fn handle(app: String, scope: asgi_types::Scope, channel: asgi_channel::Channel) {
        let mut channel = HostChannel(channel);
        let Some(app) = asgi_app(&app) else {
            let _ = crate::asgi::Channel::send(
                &mut channel,
                crate::asgi::Event::HttpResponseStart {
                    status: 404,
                    headers: Vec::new(),
                },
            );
            return;
        };
        let scope = crate::asgi::Scope {
            kind: match scope.kind {
                asgi_types::ScopeKind::Http => crate::asgi::ScopeKind::Http,
                asgi_types::ScopeKind::Websocket => crate::asgi::ScopeKind::Websocket,
            },
            method: scope.method,
            path: scope.path,
            query: scope.raw_query,
            headers: scope.headers,
            client: scope.client,
        };
        app.serve(scope, &mut channel);
    }
}

/// The host's channel seen through the SDK's [`crate::asgi::Channel`] trait.
struct HostChannel(asgi_channel::Channel);

impl crate::asgi::Channel for HostChannel {
    fn receive(&mut self) -> crate::asgi::Event {
        use crate::asgi::{Event as E, Message as M};
        match self.0.receive() {
            asgi_types::Event::HttpRequest(c) => E::HttpRequest {
                body: c.body,
                more_body: c.more_body,
            },
            asgi_types::Event::WebsocketConnect => E::WebsocketConnect,
            asgi_types::Event::WebsocketMessage(asgi_types::Message::Text(t)) => {
                E::WebsocketMessage(M::Text(t))
            }
            asgi_types::Event::WebsocketMessage(asgi_types::Message::Binary(b)) => {
                E::WebsocketMessage(M::Binary(b))
            }
            asgi_types::Event::WebsocketDisconnect(c) | asgi_types::Event::WebsocketClose(c) => {
                E::WebsocketDisconnect {
                    code: c.code,
                    reason: c.reason,
                }
            }
            _ => E::HttpDisconnect,
        }
    }

    fn send(&mut self, event: crate::asgi::Event) -> Result<(), crate::asgi::Disconnected> {
        use crate::asgi::{Event as E, Message as M};
        let event = match event {
            E::HttpResponseStart { status, headers } => {
                asgi_types::Event::HttpResponseStart(asgi_types::ResponseStart { status, headers })
            }
            E::HttpResponseBody { body, more_body } => {
                asgi_types::Event::HttpResponseBody(asgi_types::BodyChunk { body, more_body })
            }
            E::WebsocketAccept {
                subprotocol,
                headers,
            } => asgi_types::Event::WebsocketAccept(asgi_types::WsAccept {
                subprotocol,
                headers,
            }),
            E::WebsocketMessage(M::Text(t)) => {
                asgi_types::Event::WebsocketMessage(asgi_types::Message::Text(t))
            }
            E::WebsocketMessage(M::Binary(b)) => {
                asgi_types::Event::WebsocketMessage(asgi_types::Message::Binary(b))
            }
            E::WebsocketClose { code, reason } => {
                asgi_types::Event::WebsocketClose(asgi_types::WsClose { code, reason })
            }
            other => {
                return Err(crate::asgi::Disconnected(format!(
                    "an app cannot send {other:?}"
                )));
            }
        };
        self.0.send(&event).map_err(crate::asgi::Disconnected)
    }
}

impl wsgi_app::Guest for Component {
    fn handle(
        app: String,
        environ: wasmhost::guest::wsgi_types::Environ,
        input: wsgi_io::Input,
        output: wsgi_io::Output,
    ) {
        let mut body = Vec::new();
        loop {
            match input.read(crate::wsgi::CHUNK as u64) {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(_) => return,
            }
        }
        let response = match wsgi_app(&app) {
            Some(wsgi) => wsgi.serve(
                crate::wsgi::Environ {
                    request_method: environ.request_method,
                    script_name: environ.script_name,
                    path_info: environ.path_info,
                    query_string: environ.query_string,
                    server_name: environ.server_name,
                    server_port: environ.server_port,
                    server_protocol: environ.server_protocol,
                    url_scheme: environ.url_scheme,
                    remote_addr: environ.remote_addr,
                    headers: environ.headers,
                },
                body,
            ),
            None => crate::Response::error(404, format!("no WSGI app named `{app}`")),
        };
        if output
            .start_response(response.status, &response.headers)
            .is_err()
        {
            return;
        }
        for chunk in response.body.chunks(crate::wsgi::CHUNK) {
            if output.write(chunk).is_err() {
                return;
            }
        }
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
