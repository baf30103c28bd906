//! WebSockets through the ASGI-like shape: the upgrade is answered when the app sends
//! `websocket.accept` (403 if it closes first), then frames flow both ways through
//! tokio-tungstenite. A broken or malformed stream reaches the app as a disconnect.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::StatusCode;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::asgi::{event_name, scope_of};
use super::{Body, Request, failure, full, guest_headers, json_error};
use crate::engine::asgi::{Event, Message, ScopeKind, WsAccept, WsClose};
use crate::engine::{
    AsgiConnection, BoxFuture, ChannelError, EndpointSpec, Engine, LoadedComponent,
};

/// Largest WebSocket message accepted from a client.
const MAX_MESSAGE: usize = 16 << 20;

/// True for a WebSocket opening handshake.
pub(super) fn is_upgrade<B>(request: &hyper::Request<B>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        request.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    request.method() == hyper::Method::GET
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
}

pub(super) async fn serve(
    engine: Arc<Engine>,
    component: Arc<LoadedComponent>,
    spec: EndpointSpec,
    mut request: Request,
) -> hyper::Response<Body> {
    let key = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec());
    let version_ok = request
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let Some(key) = key.filter(|_| version_ok) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "a WebSocket handshake needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
        );
    };
    let upgrade = hyper::upgrade::on(&mut request);
    let scope = scope_of(&request, ScopeKind::Websocket);
    let (head_tx, head_rx) = oneshot::channel();
    let connection = WsConnection {
        state: State::Connecting,
        handshake: Some(Handshake {
            key,
            upgrade,
            head: head_tx,
        }),
    };
    let (err_tx, err_rx) = oneshot::channel();
    tokio::spawn(async move {
        let result = engine
            .asgi(&component, &spec, scope, Box::new(connection))
            .await;
        let response = match result {
            Ok(()) => forbidden(),
            Err(e) => failure(&component.manifest.app, &spec, e),
        };
        let _ = err_tx.send(response);
    });
    // The head comes from the app's accept (101) or close (403); if the app ends without
    // either, its outcome decides.
    match head_rx.await {
        Ok(response) => response,
        Err(_) => err_rx.await.unwrap_or_else(|_| forbidden()),
    }
}

fn forbidden() -> hyper::Response<Body> {
    json_error(
        StatusCode::FORBIDDEN,
        "the app did not accept the WebSocket",
    )
}

/// What is needed to answer the handshake.
struct Handshake {
    key: Vec<u8>,
    upgrade: OnUpgrade,
    head: oneshot::Sender<hyper::Response<Body>>,
}

enum State {
    /// `websocket.connect` not delivered yet.
    Connecting,
    /// Delivered; waiting for the app to accept or close.
    Pending,
    Open(Box<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>>),
    Closed,
}

/// The host's end of a WebSocket connection.
struct WsConnection {
    state: State,
    handshake: Option<Handshake>,
}

impl WsConnection {
    async fn next_event(&mut self) -> Event {
        loop {
            let socket = match &mut self.state {
                State::Connecting => {
                    self.state = State::Pending;
                    return Event::WebsocketConnect;
                }
                State::Pending | State::Closed => return disconnect(1006, ""),
                State::Open(socket) => socket,
            };
            let event = match socket.next().await {
                Some(Ok(WsMessage::Text(text))) => {
                    return Event::WebsocketMessage(Message::Text(text.as_str().to_owned()));
                }
                Some(Ok(WsMessage::Binary(bytes))) => {
                    return Event::WebsocketMessage(Message::Binary(bytes.to_vec()));
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => continue,
                Some(Ok(WsMessage::Close(frame))) => match frame {
                    Some(f) => disconnect(u16::from(f.code), f.reason.as_str()),
                    None => disconnect(1005, ""),
                },
                Some(Err(e)) => {
                    tracing::info!("WebSocket closed on a bad frame or I/O error: {e}");
                    disconnect(1002, &e.to_string())
                }
                None => disconnect(1006, ""),
            };
            self.state = State::Closed;
            return event;
        }
    }

    async fn deliver(&mut self, event: Event) -> Result<(), ChannelError> {
        match event {
            Event::WebsocketAccept(accept) => self.accept(accept).await,
            Event::WebsocketMessage(message) => {
                let State::Open(socket) = &mut self.state else {
                    return Err(ChannelError::OutOfOrder("the WebSocket is not open"));
                };
                let frame = match message {
                    Message::Text(text) => WsMessage::text(text),
                    Message::Binary(bytes) => WsMessage::binary(bytes),
                };
                socket
                    .send(frame)
                    .await
                    .map_err(|e| ChannelError::ClientGone(Box::new(e)))
            }
            Event::WebsocketClose(close) => {
                match std::mem::replace(&mut self.state, State::Closed) {
                    State::Open(mut socket) => {
                        let frame = CloseFrame {
                            code: CloseCode::from(close.code),
                            reason: close.reason.into(),
                        };
                        let _ = socket.send(WsMessage::Close(Some(frame))).await;
                        let _ = socket.close().await;
                    }
                    // Closing before accepting refuses the handshake (ASGI: HTTP 403).
                    _ => {
                        if let Some(h) = self.handshake.take() {
                            let _ = h.head.send(forbidden());
                        }
                    }
                }
                Ok(())
            }
            other => Err(ChannelError::UnexpectedEvent {
                event: event_name(&other),
                on: "a WebSocket",
            }),
        }
    }

    async fn accept(&mut self, accept: WsAccept) -> Result<(), ChannelError> {
        let Some(handshake) = self.handshake.take() else {
            return Err(ChannelError::OutOfOrder(
                "the WebSocket was already accepted or closed",
            ));
        };
        let mut response = hyper::Response::new(full(bytes::Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        guest_headers(accept.headers, headers);
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        let accept_key = derive_accept_key(&handshake.key);
        if let Ok(v) = HeaderValue::from_str(&accept_key) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(p) = accept
            .subprotocol
            .and_then(|p| HeaderValue::from_str(&p).ok())
        {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        handshake
            .head
            .send(response)
            .map_err(|_| ChannelError::Disconnected)?;
        let upgraded = handshake
            .upgrade
            .await
            .map_err(|e| ChannelError::ClientGone(Box::new(e)))?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        self.state = State::Open(Box::new(socket));
        Ok(())
    }
}

fn disconnect(code: u16, reason: &str) -> Event {
    Event::WebsocketDisconnect(WsClose {
        code,
        reason: reason.to_owned(),
    })
}

impl AsgiConnection for WsConnection {
    fn receive(&mut self) -> BoxFuture<'_, Event> {
        Box::pin(self.next_event())
    }

    fn send(&mut self, event: Event) -> BoxFuture<'_, Result<(), ChannelError>> {
        Box::pin(self.deliver(event))
    }
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        // The app returned with the socket open: close it politely in the background.
        if let State::Open(mut socket) = std::mem::replace(&mut self.state, State::Closed)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = socket.send(WsMessage::Close(None)).await;
                let _ = socket.close().await;
            });
        }
    }
}
