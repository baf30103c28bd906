//! The ASGI-like shape over HTTP: the scope of a request, a channel whose `receive`
//! streams the request body and whose `send` streams the response, and the bridge of
//! WebSocket upgrades (see `websocket`).

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::StatusCode;
use tokio::sync::Mutex;

use super::body::{BodyError, RequestBody};
use super::respond::{self, Declared, Responder};
use super::{Body, Request, failure, json_error, request_headers, websocket};
use crate::engine::asgi::{BodyChunk, Event, Scope, ScopeKind};
use crate::engine::{AsgiConnection, BoxFuture, ChannelError, Engine, LoadedComponent};

/// The peer of a connection, put in request extensions by the gateway.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

pub(super) async fn serve(
    engine: Arc<Engine>,
    component: Arc<LoadedComponent>,
    index: usize,
    request: Request,
) -> hyper::Response<Body> {
    let Some(spec) = component.manifest.endpoints.get(index).cloned() else {
        return json_error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    if websocket::is_upgrade(&request) {
        return websocket::serve(engine, component, spec, request).await;
    }
    let scope = scope_of(&request, ScopeKind::Http);
    let (responder, head) = Responder::new();
    let responder = Arc::new(Mutex::new(responder));
    let connection = HttpConnection {
        body: Some(request.into_body()),
        responder: responder.clone(),
        unsent: Declared::default(),
    };
    respond::from_task(responder, head, async move {
        engine
            .asgi(&component, &spec, scope, Box::new(connection))
            .await
            .map_err(|e| failure(&component.manifest.app, &spec, e))
    })
    .await
}

/// The scope of a request, as ASGI defines it.
pub(super) fn scope_of<B>(request: &hyper::Request<B>, kind: ScopeKind) -> Scope {
    let uri = request.uri();
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8_lossy()
        .into_owned();
    let server = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<hyper::http::uri::Authority>().ok())
        .map(|a| (a.host().to_owned(), a.port_u16().unwrap_or(80)));
    let subprotocols = request
        .headers()
        .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let websocket = matches!(kind, ScopeKind::Websocket);
    Scope {
        kind,
        http_version: match request.version() {
            hyper::Version::HTTP_2 => "2".into(),
            hyper::Version::HTTP_10 => "1.0".into(),
            _ => "1.1".into(),
        },
        method: request.method().as_str().to_owned(),
        scheme: if websocket { "ws" } else { "http" }.into(),
        path,
        raw_query: uri.query().unwrap_or_default().to_owned(),
        root_path: String::new(),
        headers: request_headers(request.headers()),
        client: request
            .extensions()
            .get::<ClientAddr>()
            .map(|c| (c.0.ip().to_string(), c.0.port())),
        server,
        subprotocols,
    }
}

/// The host's end of an HTTP connection.
struct HttpConnection {
    /// The request body until it has been read to its end.
    body: Option<RequestBody>,
    responder: Arc<Mutex<Responder>>,
    /// What is left of the response body, where its head declared a length.
    unsent: Declared,
}

impl HttpConnection {
    async fn next_event(&mut self) -> Event {
        if let Some(body) = &mut self.body {
            loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            if data.is_empty() {
                                continue;
                            }
                            return Event::HttpRequest(BodyChunk {
                                body: data.to_vec(),
                                more_body: !hyper::body::Body::is_end_stream(body),
                            });
                        }
                    }
                    None => {
                        self.body = None;
                        return Event::HttpRequest(BodyChunk {
                            body: Vec::new(),
                            more_body: false,
                        });
                    }
                    Some(Err(e)) => {
                        tracing::info!("ASGI request body ended early: {e}");
                        self.body = None;
                        if !matches!(e, BodyError::Read(_)) {
                            let response = json_error(e.status(), &e.to_string());
                            self.responder.lock().await.reject(response);
                        }
                        return Event::HttpDisconnect;
                    }
                }
            }
        }
        // After the body, `receive` waits for the client to go away.
        self.responder.lock().await.disconnected().await;
        Event::HttpDisconnect
    }

    async fn deliver(&mut self, event: Event) -> Result<(), ChannelError> {
        let mut responder = self.responder.lock().await;
        match event {
            Event::HttpResponseStart(start) => {
                let declared = Declared::from_headers(&start.headers);
                responder.start(start.status, start.headers)?;
                self.unsent = declared;
                Ok(())
            }
            Event::HttpResponseBody(chunk) => {
                self.unsent.sent(chunk.body.len());
                responder.body(chunk.body, chunk.more_body).await
            }
            other => Err(ChannelError::UnexpectedEvent {
                event: event_name(&other),
                on: "an HTTP connection",
            }),
        }
    }
}

impl AsgiConnection for HttpConnection {
    fn receive(&mut self) -> BoxFuture<'_, Event> {
        Box::pin(self.next_event())
    }

    fn send(&mut self, event: Event) -> BoxFuture<'_, Result<(), ChannelError>> {
        Box::pin(self.deliver(event))
    }

    /// The last chunk, or the one that brings the body to the length its head declared:
    /// hyper ends a body of known length with its last byte, and apps often send an empty
    /// last chunk only after it (a streaming middleware, for one).
    fn completes(&self, event: &Event) -> bool {
        match event {
            Event::HttpResponseBody(chunk) => {
                !chunk.more_body || self.unsent.filled_by(chunk.body.len())
            }
            _ => false,
        }
    }
}

/// The ASGI name of an event, for messages.
pub(super) fn event_name(event: &Event) -> &'static str {
    match event {
        Event::HttpRequest(_) => "http.request",
        Event::HttpDisconnect => "http.disconnect",
        Event::HttpResponseStart(_) => "http.response.start",
        Event::HttpResponseBody(_) => "http.response.body",
        Event::WebsocketConnect => "websocket.connect",
        Event::WebsocketAccept(_) => "websocket.accept",
        Event::WebsocketMessage(_) => "websocket.send",
        Event::WebsocketClose(_) => "websocket.close",
        Event::WebsocketDisconnect(_) => "websocket.disconnect",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::asgi::ResponseStart;

    fn chunk(body: &[u8], more_body: bool) -> Event {
        Event::HttpResponseBody(BodyChunk {
            body: body.to_vec(),
            more_body,
        })
    }

    #[tokio::test]
    async fn the_chunk_that_fills_the_declared_length_completes_the_response() {
        let (responder, _head) = Responder::new();
        let mut connection = HttpConnection {
            body: None,
            responder: Arc::new(Mutex::new(responder)),
            unsent: Declared::default(),
        };
        let headers = vec![("Content-Length".to_owned(), " 5".to_owned())];
        let start = Event::HttpResponseStart(ResponseStart {
            status: 200,
            headers,
        });
        assert!(!connection.completes(&start));
        connection.send(start).await.unwrap();
        assert!(!connection.completes(&chunk(b"he", true)));
        connection.send(chunk(b"he", true)).await.unwrap();
        assert!(connection.completes(&chunk(b"llo", true)));
        // Without a declared length only the last chunk completes it.
        let fresh = HttpConnection {
            unsent: Declared::default(),
            ..connection
        };
        assert!(!fresh.completes(&chunk(b"hello", true)));
        assert!(fresh.completes(&chunk(b"", false)));
    }
}
