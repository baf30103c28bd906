//! The body of a `wasi:http` component's response, as the host hands it to hyper: the
//! guest's stream, and the [`Reply`] its pool watches to know when the client has it all.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::demand::Reply;

/// The body of a response from a `wasi:http` proxy component, streamed as the guest writes it.
pub struct ProxyBody {
    inner: HyperOutgoingBody,
    /// Marked delivered at the body's end, or when hyper drops it (done with a body of
    /// known length, or the client went away).
    reply: Option<Arc<Reply>>,
}

impl ProxyBody {
    pub(crate) fn new(inner: HyperOutgoingBody, reply: Option<Arc<Reply>>) -> Self {
        Self { inner, reply }
    }

    fn delivered(&mut self) {
        if let Some(reply) = self.reply.take() {
            reply.delivered();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.delivered();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        self.delivered();
    }
}
