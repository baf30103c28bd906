//! The WSGI-like shape: the environ and a `wsgi.input` reader go in; `start_response`
//! and body chunks come out, streamed to the client as the app writes them.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use hyper::StatusCode;
use tokio::sync::Mutex;

use super::asgi::ClientAddr;
use super::body::{BodyError, RequestBody};
use super::respond::{self, Declared, Responder};
use super::{Body, Request, failure, json_error, request_headers};
use crate::engine::{
    BoxFuture, ChannelError, Engine, Environ, LoadedComponent, WsgiInput, WsgiOutput,
};

pub(super) async fn serve(
    engine: Arc<Engine>,
    component: Arc<LoadedComponent>,
    index: usize,
    request: Request,
) -> hyper::Response<Body> {
    let Some(spec) = component.manifest.endpoints.get(index).cloned() else {
        return json_error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    let environ = environ_of(&request);
    let (responder, head) = Responder::new();
    let responder = Arc::new(Mutex::new(responder));
    let input = Input {
        body: Some(request.into_body()),
        buffered: Bytes::new(),
        responder: responder.clone(),
    };
    let output = Output {
        responder: responder.clone(),
        unsent: Declared::default(),
    };
    respond::from_task(responder, head, async move {
        let (input, output) = (Box::new(input), Box::new(output));
        engine
            .wsgi(&component, &spec, environ, input, output)
            .await
            .map_err(|e| failure(&component.manifest.app, &spec, e))
    })
    .await
}

fn environ_of(request: &Request) -> Environ {
    let uri = request.uri();
    let (server_name, server_port) = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<hyper::http::uri::Authority>().ok())
        .map(|a| (a.host().to_owned(), a.port_u16().unwrap_or(80).to_string()))
        .unwrap_or_else(|| ("localhost".into(), "80".into()));
    Environ {
        request_method: request.method().as_str().to_owned(),
        script_name: String::new(),
        path_info: percent_encoding::percent_decode_str(uri.path())
            .decode_utf8_lossy()
            .into_owned(),
        query_string: uri.query().unwrap_or_default().to_owned(),
        server_name,
        server_port,
        server_protocol: match request.version() {
            hyper::Version::HTTP_2 => "HTTP/2".into(),
            hyper::Version::HTTP_10 => "HTTP/1.0".into(),
            _ => "HTTP/1.1".into(),
        },
        url_scheme: "http".into(),
        remote_addr: request
            .extensions()
            .get::<ClientAddr>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default(),
        headers: request_headers(request.headers()),
    }
}

/// `wsgi.input` over the streamed request body.
struct Input {
    body: Option<RequestBody>,
    buffered: Bytes,
    /// To answer 413 when the body passes the limit.
    responder: Arc<Mutex<Responder>>,
}

impl Input {
    async fn read_up_to(&mut self, max: u64) -> Result<Vec<u8>, ChannelError> {
        let max = usize::try_from(max).unwrap_or(usize::MAX).max(1);
        while self.buffered.is_empty() {
            let Some(body) = &mut self.body else {
                return Ok(Vec::new());
            };
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffered = data;
                    }
                }
                None => self.body = None,
                Some(Err(e)) => {
                    self.body = None;
                    if !matches!(e, BodyError::Read(_)) {
                        let response = json_error(e.status(), &e.to_string());
                        self.responder.lock().await.reject(response);
                    }
                    return Err(ChannelError::Body(Box::new(e)));
                }
            }
        }
        let n = max.min(self.buffered.len());
        let chunk = self.buffered.copy_to_bytes(n);
        Ok(chunk.to_vec())
    }
}

impl WsgiInput for Input {
    fn read(&mut self, max: u64) -> BoxFuture<'_, Result<Vec<u8>, ChannelError>> {
        Box::pin(self.read_up_to(max))
    }
}

/// `start_response` and the body writer.
struct Output {
    responder: Arc<Mutex<Responder>>,
    /// What is left of the body, where the app declared its length.
    unsent: Declared,
}

impl WsgiOutput for Output {
    fn start_response(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> BoxFuture<'_, Result<(), ChannelError>> {
        let declared = Declared::from_headers(&headers);
        Box::pin(async move {
            self.responder.lock().await.start(status, headers)?;
            self.unsent = declared;
            Ok(())
        })
    }

    fn write(&mut self, chunk: Vec<u8>) -> BoxFuture<'_, Result<(), ChannelError>> {
        self.unsent.sent(chunk.len());
        Box::pin(async move {
            let mut responder = self.responder.lock().await;
            if !responder.started() {
                return Err(ChannelError::OutOfOrder("write() before start_response()"));
            }
            responder.body(chunk, true).await
        })
    }

    fn completes(&self, chunk: &[u8]) -> bool {
        self.unsent.filled_by(chunk.len())
    }
}
