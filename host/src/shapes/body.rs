//! Request bodies as shapes receive them: streamed from hyper, bounded by a byte limit
//! and by a read deadline, so a client that stops sending cannot hold a guest.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the gateway accepts.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The client sent the body too slowly (or stopped sending it).
    #[error(
        "the request body did not arrive in time (allowed: {timeout:?} plus 1 s per {min_rate} bytes received)"
    )]
    TimedOut {
        /// The base allowance.
        timeout: Duration,
        /// Bytes per second that extend it.
        min_rate: u64,
    },
    /// The connection failed while the body was read.
    #[error("could not read the request body: {0}")]
    Read(String),
}

/// A streamed request body.
pub type RequestBody = UnsyncBoxBody<Bytes, BodyError>;

/// How much of a request body the host accepts, and how fast it must arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, in bytes.
    pub max_bytes: usize,
    /// Time a body may take before its first byte counts for anything.
    pub timeout: Duration,
    /// Each this many bytes received extend the allowance by one second (0: no extension),
    /// so large uploads from slow but steady clients still arrive.
    pub min_rate: u64,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_bytes: 32 << 20,
            timeout: Duration::from_secs(30),
            min_rate: 64 << 10,
        }
    }
}

/// Streams `body`, failing with [`BodyError::TooLarge`] once it passes the byte limit and
/// with [`BodyError::TimedOut`] once it falls behind its deadline.
pub fn limit_body<B>(body: B, limits: BodyLimits) -> RequestBody
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let timed = Timed {
        inner: body,
        started: Instant::now(),
        deadline: Box::pin(tokio::time::sleep(limits.timeout)),
        received: 0,
        limits,
    };
    Limited::new(timed, limits.max_bytes)
        .map_err(move |e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                BodyError::TooLarge {
                    limit: limits.max_bytes,
                }
            } else if e.downcast_ref::<Late>().is_some() {
                BodyError::TimedOut {
                    timeout: limits.timeout,
                    min_rate: limits.min_rate,
                }
            } else {
                BodyError::Read(e.to_string())
            }
        })
        .boxed_unsync()
}

/// The marker error of a body past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("request body deadline passed")]
struct Late;

/// A body that fails with [`Late`] when its next frame does not come before the deadline.
struct Timed<B> {
    inner: B,
    started: Instant,
    deadline: Pin<Box<Sleep>>,
    received: u64,
    limits: BodyLimits,
}

impl<B> hyper::body::Body for Timed<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && this.limits.min_rate > 0
                {
                    this.received += data.len() as u64;
                    let earned =
                        Duration::from_secs_f64(this.received as f64 / this.limits.min_rate as f64);
                    let deadline = this.started + this.limits.timeout + earned;
                    this.deadline.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Late)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Collects a whole body (the `endpoint` shape takes bodies whole).
pub(super) async fn collect(body: RequestBody) -> Result<Bytes, BodyError> {
    Ok(body.collect().await?.to_bytes())
}

/// A body already read whole.
pub(super) fn buffered(bytes: Bytes) -> RequestBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl BodyError {
    /// The status that answers a request whose body failed this way.
    pub fn status(&self) -> hyper::StatusCode {
        match self {
            BodyError::TooLarge { .. } => hyper::StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut { .. } => hyper::StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => hyper::StatusCode::BAD_REQUEST,
        }
    }
}

impl From<BodyError> for wasmtime_wasi_http::Error {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => Self::HttpRequestBodySize(Some(limit as u64)),
            BodyError::TimedOut { .. } => Self::ConnectionReadTimeout,
            BodyError::Read(msg) => Self::InternalError(Some(msg)),
        }
    }
}

impl From<BodyError> for std::io::Error {
    fn from(e: BodyError) -> Self {
        std::io::Error::other(e)
    }
}
