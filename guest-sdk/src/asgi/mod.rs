//! ASGI-like apps (Modal's `asgi_app`): a router with typed path parameters, middleware,
//! lifespan hooks, streaming responses, server-sent events and WebSockets.
//!
//! ```no_run
//! # extern crate wasmhost_sdk as wasmhost;
//! use wasmhost::asgi::{App, Reply};
//! use wasmhost::{Json, Request, Response};
//!
//! #[wasmhost::asgi_app]
//! fn web() -> App {
//!     App::new()
//!         .get("/", |_req| Json(serde_json::json!({"status": "ok"})))
//!         .get("/items/{item_id}", |req: Request| -> Result<Response, Response> {
//!             let id: i64 = req.param("item_id")?; // a non-integer answers 422
//!             Ok(Response::new(200).json(&serde_json::json!({"item_id": id})))
//!         })
//!         .get("/stream", |_req| Reply::sse(|events| {
//!             for i in 0..5 {
//!                 events.data(i)?;
//!                 std::thread::sleep(std::time::Duration::from_millis(200));
//!             }
//!             Ok(())
//!         }))
//!         .websocket("/ws", |_req, ws| {
//!             while let Some(message) = ws.recv() {
//!                 if ws.send(message).is_err() {
//!                     break;
//!                 }
//!             }
//!         })
//! }
//! # fn main() {}
//! ```
//!
//! Handlers are plain synchronous functions: the instance blocks while it waits for the
//! client, and the host keeps serving other requests in other instances.

use std::fmt::Display;

mod socket;
mod stream;

pub use socket::WebSocket;
pub use stream::{BodyWriter, IntoReply, Reply, SseWriter, Streaming};

use crate::router::{Found, Router};
use crate::{Headers, Request, Response};

/// An event on an ASGI channel (mirrors the WIT `event` variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `http.request`: a body chunk and whether more follow.
    HttpRequest {
        /// The chunk.
        body: Vec<u8>,
        /// More chunks follow.
        more_body: bool,
    },
    /// `http.disconnect`.
    HttpDisconnect,
    /// `http.response.start`.
    HttpResponseStart {
        /// The status code.
        status: u16,
        /// The response headers.
        headers: Headers,
    },
    /// `http.response.body`.
    HttpResponseBody {
        /// The chunk.
        body: Vec<u8>,
        /// More chunks follow.
        more_body: bool,
    },
    /// `websocket.connect`.
    WebsocketConnect,
    /// `websocket.accept`.
    WebsocketAccept {
        /// The subprotocol chosen, if any.
        subprotocol: Option<String>,
        /// Extra response headers.
        headers: Headers,
    },
    /// `websocket.receive` / `websocket.send`.
    WebsocketMessage(Message),
    /// `websocket.close` (sent by the app).
    WebsocketClose {
        /// The close code.
        code: u16,
        /// Why.
        reason: String,
    },
    /// `websocket.disconnect` (from the client).
    WebsocketDisconnect {
        /// The close code.
        code: u16,
        /// Why.
        reason: String,
    },
}

/// A WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// The client is gone (or the host refused an event); stop producing output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnected(pub String);

impl Display for Disconnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "disconnected: {}", self.0)
    }
}

impl std::error::Error for Disconnected {}

/// The app's end of a connection: ASGI's `receive` and `send`.
pub trait Channel {
    /// Waits for the next event from the client.
    fn receive(&mut self) -> Event;
    /// Sends an event to the client.
    fn send(&mut self, event: Event) -> Result<(), Disconnected>;
}

/// Whether a connection is plain HTTP or a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// An HTTP request.
    Http,
    /// A WebSocket.
    Websocket,
}

/// What ASGI calls the scope: the connection's request line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// HTTP or WebSocket.
    pub kind: ScopeKind,
    /// Upper-case method.
    pub method: String,
    /// Decoded path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Header fields, lower-case names.
    pub headers: Headers,
    /// The client's address and port.
    pub client: Option<(String, u16)>,
}

type Handler = Box<dyn Fn(Request) -> Reply>;
type RawHandler = Box<dyn Fn(Request, &mut dyn Channel)>;
type SocketHandler = Box<dyn Fn(Request, &mut WebSocket<'_>)>;
type Middleware = Box<dyn Fn(Request, Next<'_>) -> Reply>;

/// The rest of the middleware chain and the router, for a middleware to call.
pub struct Next<'a> {
    app: &'a App,
    index: usize,
}

impl Next<'_> {
    /// Runs the request through the remaining middleware and the route.
    pub fn run(self, request: Request) -> Reply {
        self.app.dispatch(self.index, request)
    }
}

/// An ASGI-like app: routes, WebSocket routes, middleware and lifespan hooks.
#[derive(Default)]
pub struct App {
    routes: Router<Handler>,
    raw: Router<RawHandler>,
    sockets: Router<SocketHandler>,
    middleware: Vec<Middleware>,
    startup: Vec<Box<dyn Fn() -> Result<(), String>>>,
    shutdown: Vec<Box<dyn Fn()>>,
}

impl App {
    /// An app with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `method` (or `*`) on `path` (with `{name}` parameters) to `handler`.
    #[must_use]
    pub fn route<R: IntoReply>(
        mut self,
        method: &str,
        path: &str,
        handler: impl Fn(Request) -> R + 'static,
    ) -> Self {
        self.routes
            .add(method, path, Box::new(move |r| handler(r).into_reply()));
        self
    }

    /// Routes `GET` (and `HEAD`) on `path`.
    #[must_use]
    pub fn get<R: IntoReply>(self, path: &str, handler: impl Fn(Request) -> R + 'static) -> Self {
        self.route("GET", path, handler)
    }

    /// Routes `POST` on `path`.
    #[must_use]
    pub fn post<R: IntoReply>(self, path: &str, handler: impl Fn(Request) -> R + 'static) -> Self {
        self.route("POST", path, handler)
    }

    /// Routes `PUT` on `path`.
    #[must_use]
    pub fn put<R: IntoReply>(self, path: &str, handler: impl Fn(Request) -> R + 'static) -> Self {
        self.route("PUT", path, handler)
    }

    /// Routes `DELETE` on `path`.
    #[must_use]
    pub fn delete<R: IntoReply>(
        self,
        path: &str,
        handler: impl Fn(Request) -> R + 'static,
    ) -> Self {
        self.route("DELETE", path, handler)
    }

    /// Routes `method` on `path` to a raw ASGI handler: it gets the request (body read)
    /// and sends `http.response.*` events on the channel itself. Middleware does not apply.
    #[must_use]
    pub fn raw(
        mut self,
        method: &str,
        path: &str,
        handler: impl Fn(Request, &mut dyn Channel) + 'static,
    ) -> Self {
        self.raw.add(method, path, Box::new(handler));
        self
    }

    /// Serves WebSockets on `path`; the socket is accepted before `handler` runs and
    /// closed (code 1000) after it returns.
    #[must_use]
    pub fn websocket(
        mut self,
        path: &str,
        handler: impl Fn(Request, &mut WebSocket<'_>) + 'static,
    ) -> Self {
        self.sockets.add("*", path, Box::new(handler));
        self
    }

    /// Wraps every HTTP route; the first added runs outermost.
    #[must_use]
    pub fn middleware(mut self, middleware: impl Fn(Request, Next<'_>) -> Reply + 'static) -> Self {
        self.middleware.push(Box::new(middleware));
        self
    }

    /// Runs at lifespan startup, once per instance; an error fails the instance.
    #[must_use]
    pub fn on_startup(mut self, hook: impl Fn() -> Result<(), String> + 'static) -> Self {
        self.startup.push(Box::new(hook));
        self
    }

    /// Runs at lifespan shutdown.
    #[must_use]
    pub fn on_shutdown(mut self, hook: impl Fn() + 'static) -> Self {
        self.shutdown.push(Box::new(hook));
        self
    }

    /// Lifespan startup: runs the startup hooks in order.
    pub fn startup(&self) -> Result<(), String> {
        self.startup.iter().try_for_each(|hook| hook())
    }

    /// Lifespan shutdown: runs the shutdown hooks in order.
    pub fn shutdown(&self) {
        self.shutdown.iter().for_each(|hook| hook());
    }

    /// Answers one HTTP request (middleware, then the route); usable without a host.
    pub fn call(&self, request: Request) -> Reply {
        self.dispatch(0, request)
    }

    fn dispatch(&self, index: usize, request: Request) -> Reply {
        match self.middleware.get(index) {
            Some(middleware) => middleware(
                request,
                Next {
                    app: self,
                    index: index + 1,
                },
            ),
            None => self.route_request(request),
        }
    }

    fn route_request(&self, mut request: Request) -> Reply {
        match self.routes.find(&request.method, &request.path) {
            Found::Route(handler, params) => {
                request.params = params;
                handler(request)
            }
            Found::WrongMethod(allowed) => Reply::Full(
                Response::error(405, "Method Not Allowed").header("allow", allowed.join(", ")),
            ),
            Found::Nothing => Reply::Full(Response::error(404, "Not Found")),
        }
    }

    /// Serves one connection: reads the request, answers it, or runs a WebSocket.
    pub fn serve(&self, scope: Scope, channel: &mut dyn Channel) {
        match scope.kind {
            ScopeKind::Http => self.serve_http(scope, channel),
            ScopeKind::Websocket => self.serve_websocket(scope, channel),
        }
    }

    fn serve_http(&self, scope: Scope, channel: &mut dyn Channel) {
        let mut body = Vec::new();
        loop {
            match channel.receive() {
                Event::HttpRequest {
                    body: chunk,
                    more_body,
                } => {
                    body.extend_from_slice(&chunk);
                    if !more_body {
                        break;
                    }
                }
                // The client left before sending its whole request.
                _ => return,
            }
        }
        let mut request = request_of(scope, body);
        if let Found::Route(handler, params) = self.raw.find(&request.method, &request.path) {
            request.params = params;
            return handler(request, channel);
        }
        let _ = send_reply(channel, self.call(request));
    }

    fn serve_websocket(&self, scope: Scope, channel: &mut dyn Channel) {
        if !matches!(channel.receive(), Event::WebsocketConnect) {
            return;
        }
        let request = request_of(scope, Vec::new());
        let (handler, params) = match self.sockets.find("GET", &request.path) {
            Found::Route(handler, params) => (handler, params),
            // No WebSocket route: refuse the handshake (the host answers 403).
            _ => {
                let _ = channel.send(Event::WebsocketClose {
                    code: 1000,
                    reason: String::new(),
                });
                return;
            }
        };
        let accepted = channel.send(Event::WebsocketAccept {
            subprotocol: None,
            headers: Vec::new(),
        });
        if accepted.is_err() {
            return;
        }
        let mut request = request;
        request.params = params;
        let mut socket = WebSocket::new(channel);
        handler(request, &mut socket);
        socket.close(1000, "");
    }
}

fn request_of(scope: Scope, body: Vec<u8>) -> Request {
    Request {
        method: scope.method,
        path: scope.path,
        query: scope.query,
        headers: scope.headers,
        body,
        params: Vec::new(),
    }
}

/// Sends a reply on `channel`: start, then the whole body or its chunks.
fn send_reply(channel: &mut dyn Channel, reply: Reply) -> Result<(), Disconnected> {
    match reply {
        Reply::Full(response) => {
            channel.send(Event::HttpResponseStart {
                status: response.status,
                headers: response.headers,
            })?;
            channel.send(Event::HttpResponseBody {
                body: response.body,
                more_body: false,
            })
        }
        Reply::Stream(mut stream) => {
            channel.send(Event::HttpResponseStart {
                status: stream.status,
                headers: std::mem::take(&mut stream.headers),
            })?;
            stream.produce(&mut *channel)?;
            channel.send(Event::HttpResponseBody {
                body: Vec::new(),
                more_body: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A channel fed from a script, recording what the app sends.
    struct Script {
        incoming: VecDeque<Event>,
        sent: Vec<Event>,
    }

    impl Channel for Script {
        fn receive(&mut self) -> Event {
            self.incoming.pop_front().unwrap_or(Event::HttpDisconnect)
        }
        fn send(&mut self, event: Event) -> Result<(), Disconnected> {
            self.sent.push(event);
            Ok(())
        }
    }

    fn scope(kind: ScopeKind, method: &str, path: &str) -> Scope {
        Scope {
            kind,
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            client: None,
        }
    }

    fn app() -> App {
        App::new()
            .get("/items/{id}", |r: Request| -> Result<Response, Response> {
                let id: i64 = r.param("id")?;
                Ok(Response::new(200).json(&serde_json::json!({ "item_id": id })))
            })
            .post("/echo", |r: Request| Response::new(200).body(r.body))
            .get("/sse", |_r| {
                Reply::sse(|events| {
                    events.data(1)?;
                    events.data("a\nb")
                })
            })
            .websocket("/ws", |_r, ws| {
                while let Some(m) = ws.recv() {
                    let _ = ws.send(m);
                }
            })
            .middleware(|r, next| next.run(r).header("x-mw", "1"))
    }

    #[test]
    fn typed_path_params_and_422() {
        let app = app();
        let ok = |path: &str| match app.call(Request {
            method: "GET".into(),
            path: path.into(),
            ..Request::default()
        }) {
            Reply::Full(r) => r,
            Reply::Stream(_) => panic!("stream"),
        };
        let r = ok("/items/42");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, br#"{"item_id":42}"#);
        assert!(r.headers.contains(&("x-mw".into(), "1".into())));
        let r = ok("/items/abc");
        assert_eq!(r.status, 422);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["detail"][0]["loc"], serde_json::json!(["path", "id"]));
        assert_eq!(ok("/nope").status, 404);
        assert_eq!(ok("/echo").status, 405);
    }

    #[test]
    fn http_body_chunks_and_streams() {
        let app = app();
        let mut ch = Script {
            incoming: VecDeque::from([
                Event::HttpRequest {
                    body: b"he".to_vec(),
                    more_body: true,
                },
                Event::HttpRequest {
                    body: b"llo".to_vec(),
                    more_body: false,
                },
            ]),
            sent: Vec::new(),
        };
        app.serve(scope(ScopeKind::Http, "POST", "/echo"), &mut ch);
        assert_eq!(
            ch.sent[1],
            Event::HttpResponseBody {
                body: b"hello".to_vec(),
                more_body: false
            }
        );
        let mut ch = Script {
            incoming: VecDeque::from([Event::HttpRequest {
                body: vec![],
                more_body: false,
            }]),
            sent: Vec::new(),
        };
        app.serve(scope(ScopeKind::Http, "GET", "/sse"), &mut ch);
        assert_eq!(ch.sent.len(), 4, "{:?}", ch.sent);
        assert_eq!(
            ch.sent[2],
            Event::HttpResponseBody {
                body: b"data: a\ndata: b\n\n".to_vec(),
                more_body: true
            }
        );
    }

    #[test]
    fn websocket_echo_and_refusal() {
        let app = app();
        let mut ch = Script {
            incoming: VecDeque::from([
                Event::WebsocketConnect,
                Event::WebsocketMessage(Message::Text("hi".into())),
                Event::WebsocketDisconnect {
                    code: 1000,
                    reason: String::new(),
                },
            ]),
            sent: Vec::new(),
        };
        app.serve(scope(ScopeKind::Websocket, "GET", "/ws"), &mut ch);
        assert!(matches!(ch.sent[0], Event::WebsocketAccept { .. }));
        assert_eq!(
            ch.sent[1],
            Event::WebsocketMessage(Message::Text("hi".into()))
        );
        let mut ch = Script {
            incoming: VecDeque::from([Event::WebsocketConnect]),
            sent: Vec::new(),
        };
        app.serve(scope(ScopeKind::Websocket, "GET", "/other"), &mut ch);
        assert!(matches!(ch.sent[0], Event::WebsocketClose { .. }));
    }
}
