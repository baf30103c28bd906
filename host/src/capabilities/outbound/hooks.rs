//! The `wasi:http` send hook of one instance: every outgoing request is checked against
//! the allow-list its function declared, then sent with bounded timeouts and a capped
//! response body. Refusals reach the guest as `HTTP-request-denied`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::allow::{AllowedHosts, Target};
use super::{OutboundCounters, OutboundLimits};

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(hyper::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// The policy of one instance's outgoing `wasi:http` requests.
pub struct OutboundHooks {
    allowed: Arc<AllowedHosts>,
    limits: OutboundLimits,
    counters: OutboundCounters,
    /// Who is asking, for the log: `<app>/<function>`.
    who: Arc<str>,
}

impl OutboundHooks {
    pub(super) fn new(
        allowed: Arc<AllowedHosts>,
        limits: OutboundLimits,
        counters: OutboundCounters,
        who: Arc<str>,
    ) -> Self {
        Self {
            allowed,
            limits,
            counters,
            who,
        }
    }

    /// Whether the request may go out: its own URI's scheme, host and port against the
    /// allow-list, and nothing else.
    fn allows(&self, uri: &hyper::Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        self.allowed.allows(Target {
            scheme,
            host,
            port: uri.port_u16(),
        })
    }

    /// The guest's timeouts, each bounded by the host's.
    fn options(&self, asked: Option<RequestOptions>) -> RequestOptions {
        let asked = asked.unwrap_or_default();
        let bound =
            |asked: Option<std::time::Duration>, max| Some(asked.map_or(max, |a| a.min(max)));
        RequestOptions {
            connect_timeout: bound(asked.connect_timeout, self.limits.connect_timeout),
            first_byte_timeout: bound(asked.first_byte_timeout, self.limits.first_byte_timeout),
            between_bytes_timeout: bound(
                asked.between_bytes_timeout,
                self.limits.between_bytes_timeout,
            ),
        }
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let uri = request.uri().clone();
        if !self.allows(&uri) {
            self.counters.denied.inc();
            tracing::warn!(
                guest = %self.who, %uri, allowed = %self.allowed,
                "refused an outbound HTTP request: not in allowed_outbound_hosts"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        self.counters.allowed.inc();
        tracing::debug!(guest = %self.who, %uri, "outbound HTTP request");
        let options = self.options(options);
        let cap = self.limits.max_response_bytes;
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let too_big = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|n| n > cap);
            if too_big {
                return Err(HttpError::HttpResponseBodySize(Some(cap)));
            }
            let response = response.map(|body| CappedBody::new(body, cap).boxed_unsync());
            Ok((response, Box::new(io) as IoFuture))
        })
    }
}

/// A response body that fails once more than `cap` bytes came through.
struct CappedBody<B> {
    inner: Pin<Box<B>>,
    seen: u64,
    cap: u64,
}

impl<B> CappedBody<B> {
    fn new(inner: B, cap: u64) -> Self {
        Self {
            inner: Box::pin(inner),
            seen: 0,
            cap,
        }
    }
}

impl<B> Body for CappedBody<B>
where
    B: Body<Data = Bytes, Error = HttpError>,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let frame = match self.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            self.seen += data.len() as u64;
            if self.seen > self.cap {
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(self.cap)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn a_body_past_the_cap_fails() {
        let body = Full::new(Bytes::from(vec![b'x'; 100])).map_err(|e| match e {});
        let err = CappedBody::new(body, 10).collect().await.unwrap_err();
        assert!(matches!(err, HttpError::HttpResponseBodySize(Some(10))));
        let body = Full::new(Bytes::from(vec![b'x'; 10])).map_err(|e| match e {});
        let ok = CappedBody::new(body, 10).collect().await.unwrap();
        assert_eq!(ok.to_bytes().len(), 10);
    }
}
