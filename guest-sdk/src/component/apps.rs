//! The exports of ASGI- and WSGI-like apps and class endpoints (the SDK's `apps`
//! feature). A component without them wires fewer exports and imports per instance.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::Component;
use super::exports::wasmhost::guest::{asgi_app, lifecycle, wsgi_app};
use super::wasmhost::guest::{self as wasmhost_guest, asgi_channel, asgi_types, wsgi_io};
use crate::registry::{self, Kind};

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

/// The app named `name` built in this instance, built by its factory on first use;
/// `factory` picks the factory out of its registered kind (`None`: another kind).
fn built<A>(
    apps: &'static std::thread::LocalKey<RefCell<HashMap<String, Rc<A>>>>,
    name: &str,
    factory: impl FnOnce(&Kind) -> Option<fn() -> A>,
) -> Option<Rc<A>> {
    if let Some(app) = apps.with(|apps| apps.borrow().get(name).cloned()) {
        return Some(app);
    }
    let app = Rc::new(factory(&registry::find(name)?.kind)?());
    apps.with(|apps| apps.borrow_mut().insert(name.to_owned(), app.clone()));
    Some(app)
}

fn asgi_app(name: &str) -> Option<Rc<crate::asgi::App>> {
    built(&ASGI_APPS, name, |kind| match kind {
        Kind::Asgi(factory) => Some(*factory),
        _ => None,
    })
}

fn wsgi_app(name: &str) -> Option<Rc<crate::wsgi::App>> {
    built(&WSGI_APPS, name, |kind| match kind {
        Kind::Wsgi(factory) => Some(*factory),
        _ => None,
    })
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
        environ: wasmhost_guest::wsgi_types::Environ,
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
