//! The response side of streaming shapes (ASGI over HTTP, WSGI): a head that is sent once,
//! then a body that is either whole (one chunk, with a content length) or streamed chunk
//! by chunk as the guest sends it, with backpressure.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{HeaderMap, StatusCode};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Body, full, guest_headers, json_error};
use crate::engine::{ChannelError, ReadAhead};

/// Chunks buffered between the guest and the client before the guest waits.
const STREAM_BUFFER: usize = 8;

/// Runs an app's `call` in a task of its own and answers with the head it sends through
/// `responder`: a failure before the head becomes the error response, one after it
/// ends the streamed body.
pub(super) async fn from_task(
    responder: Arc<Mutex<Responder>>,
    head: oneshot::Receiver<hyper::Response<Body>>,
    call: impl Future<Output = Result<(), hyper::Response<Body>>> + Send + 'static,
) -> hyper::Response<Body> {
    // Boxed once: the task spawned per request then moves a pointer, not the large
    // future of the app's call.
    let call = Box::pin(call);
    tokio::spawn(async move {
        let error = call.await.err();
        responder.lock().await.finish(error);
    });
    let Ok(response) = head.await else {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the app's task ended without a response",
        );
    };
    if hyper::body::Body::size_hint(response.body())
        .exact()
        .is_some()
    {
        return response;
    }
    // A body the app streams chunk by chunk may be complete a turn later (a WSGI app's
    // one chunk, then its return): read ahead, it goes with its head in one write and a
    // `content-length` instead of chunked; one still coming streams as before.
    ReadAhead::response(response, ())
        .await
        .map(BodyExt::boxed_unsync)
}

/// What is left to send of a response body whose head declared its length. hyper ends
/// such a body with its last byte, so the client can have the whole response (and send
/// its next request) before the app's call returns or sends its closing event.
#[derive(Debug, Default)]
pub(super) struct Declared(Option<u64>);

impl Declared {
    /// The length `headers` declare in `content-length`, all of it unsent; several values
    /// (even equal ones) or one that is not a number leave the length to hyper's checks.
    pub(super) fn from_headers(headers: &[(String, String)]) -> Self {
        let mut values = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"));
        let first = values.next();
        Self(match (first, values.next()) {
            (Some((_, value)), None) => value.trim().parse().ok(),
            _ => None,
        })
    }

    /// Whether sending `len` more bytes completes the declared body.
    pub(super) fn filled_by(&self, len: usize) -> bool {
        self.0.is_some_and(|unsent| len as u64 >= unsent)
    }

    /// `len` more bytes were sent.
    pub(super) fn sent(&mut self, len: usize) {
        if let Some(unsent) = &mut self.0 {
            *unsent = unsent.saturating_sub(len as u64);
        }
    }
}

/// Where a streaming shape's response goes.
pub(super) struct Responder {
    head: Option<oneshot::Sender<hyper::Response<Body>>>,
    pending: Option<(StatusCode, HeaderMap)>,
    sink: Option<mpsc::Sender<io::Result<Bytes>>>,
    finished: bool,
}

impl Responder {
    /// A responder and the receiver of the response head.
    pub(super) fn new() -> (Self, oneshot::Receiver<hyper::Response<Body>>) {
        let (tx, rx) = oneshot::channel();
        let responder = Self {
            head: Some(tx),
            pending: None,
            sink: None,
            finished: false,
        };
        (responder, rx)
    }

    /// Records the status and headers; they go out with the first body chunk.
    pub(super) fn start(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> Result<(), ChannelError> {
        if self.pending.is_some() || self.head.is_none() {
            return Err(ChannelError::OutOfOrder("the response has already started"));
        }
        let status =
            StatusCode::from_u16(status).map_err(|_| ChannelError::InvalidStatus(status))?;
        let mut map = HeaderMap::new();
        guest_headers(headers, &mut map);
        self.pending = Some((status, map));
        Ok(())
    }

    /// True once the head was recorded or sent.
    pub(super) fn started(&self) -> bool {
        self.pending.is_some() || self.head.is_none()
    }

    /// Sends a chunk of the body; `more` says whether more follow.
    pub(super) async fn body(&mut self, chunk: Vec<u8>, more: bool) -> Result<(), ChannelError> {
        if self.finished {
            return Err(ChannelError::OutOfOrder("the response is already complete"));
        }
        if let Some((status, headers)) = self.pending.take() {
            let head = self.head.take().ok_or(ChannelError::OutOfOrder(
                "the response head was already sent",
            ))?;
            let body = if more {
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                self.sink = Some(tx);
                ChannelBody { rx }.boxed_unsync()
            } else {
                self.finished = true;
                full(chunk.clone())
            };
            let mut response = hyper::Response::new(body);
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            head.send(response)
                .map_err(|_| ChannelError::Disconnected)?;
            if !more {
                return Ok(());
            }
        }
        let sink = self.sink.as_ref().ok_or(ChannelError::OutOfOrder(
            "a body chunk came before the response start",
        ))?;
        if !chunk.is_empty() && sink.send(Ok(Bytes::from(chunk))).await.is_err() {
            tracing::info!("the client disconnected mid-response; telling the app");
            self.sink = None;
            self.finished = true;
            return Err(ChannelError::Disconnected);
        }
        if !more {
            self.sink = None;
            self.finished = true;
        }
        Ok(())
    }

    /// Answers with `response` instead of the app, if nothing was sent yet (e.g. a 413
    /// when the request body passed the limit while the app read it).
    pub(super) fn reject(&mut self, response: hyper::Response<Body>) {
        if let Some(head) = self.head.take() {
            self.pending = None;
            self.finished = true;
            let _ = head.send(response);
        }
    }

    /// Waits until the client goes away (or returns at once if the response is complete).
    pub(super) async fn disconnected(&mut self) {
        if let Some(sink) = &self.sink {
            sink.closed().await;
        } else if let Some(head) = &mut self.head {
            head.closed().await;
        }
    }

    /// Ends the exchange once the guest's call returned: a started response is completed
    /// (an empty body if none came); `error` is sent if nothing was, or aborts a stream.
    pub(super) fn finish(&mut self, error: Option<hyper::Response<Body>>) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(sink) = self.sink.take() {
            if error.is_some() {
                let _ = sink.try_send(Err(io::Error::other("the app failed mid-response")));
            }
            return;
        }
        let Some(head) = self.head.take() else { return };
        let response = match (error, self.pending.take()) {
            (Some(error), _) => error,
            (None, Some((status, headers))) => {
                let mut r = hyper::Response::new(full(Bytes::new()));
                *r.status_mut() = status;
                *r.headers_mut() = headers;
                r
            }
            (None, None) => super::json_error(
                StatusCode::BAD_GATEWAY,
                "the app returned without sending a response start",
            ),
        };
        let _ = head.send(response);
    }
}

/// A response body fed by a channel; an `Err` item aborts the response.
struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::Declared;

    #[test]
    fn a_declared_length_is_one_number_counted_down() {
        let header = |v: &str| ("Content-Length".to_owned(), v.to_owned());
        let mut declared = Declared::from_headers(&[header(" 12")]);
        assert!(!declared.filled_by(11));
        declared.sent(11);
        assert!(declared.filled_by(1));
        for unknown in [vec![header("x")], vec![header("3"), header("3")], vec![]] {
            assert!(!Declared::from_headers(&unknown).filled_by(usize::MAX));
        }
    }
}
