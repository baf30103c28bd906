//! Request bodies as shapes receive them: streamed from hyper, bounded by a byte limit
//! and by a read deadline, so a client that stops sending cannot hold a guest.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Frame, SizeHint};
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
        timer: None,
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
    /// Made the first time a frame is not there yet: most bodies (none, or one frame that
    /// came with the head) are read without waiting, and a timer per request is not free.
    timer: Option<Pin<Box<Sleep>>>,
    received: u64,
    limits: BodyLimits,
}

impl<B> Timed<B> {
    /// The base allowance from the start, plus what the bytes received so far earned.
    fn deadline(&self) -> Instant {
        let earned = match self.limits.min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(self.received as f64 / rate as f64),
        };
        self.started + self.limits.timeout + earned
    }
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
                    let deadline = this.deadline();
                    if let Some(timer) = &mut this.timer {
                        timer.as_mut().reset(deadline);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline();
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Late)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The most a declared length may reserve before the bytes arrive.
const MAX_RESERVE: u64 = 64 << 20;

/// Collects a whole body (the `endpoint` shape takes bodies whole) into one buffer sized
/// from the declared length: each frame is copied once and dropped, so a body costs its
/// size, not a list of frames plus a contiguous copy of them.
pub(super) async fn collect(mut body: RequestBody) -> Result<Bytes, BodyError> {
    let hint = body.size_hint();
    let reserve = hint.upper().unwrap_or(hint.lower()).min(MAX_RESERVE);
    let mut whole = BytesMut::with_capacity(usize::try_from(reserve).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if whole.is_empty() && body.is_end_stream() {
                // A body of one frame needs no copy at all.
                return Ok(data);
            }
            whole.extend_from_slice(&data);
        }
    }
    Ok(whole.freeze())
}

/// A body already read whole.
pub(super) fn buffered(bytes: Bytes) -> RequestBody {
    if bytes.is_empty() {
        // Zero-sized: boxing it allocates nothing.
        return RequestBody::default();
    }
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::Full;
    use tokio::sync::mpsc;

    use super::*;

    /// A body whose frames come when the test sends them; it ends when the sender drops.
    struct Trickle(mpsc::UnboundedReceiver<Bytes>);

    impl hyper::body::Body for Trickle {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    fn limits(timeout: Duration, min_rate: u64) -> BodyLimits {
        BodyLimits {
            max_bytes: 1 << 20,
            timeout,
            min_rate,
        }
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_once_its_deadline_passes() {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(Bytes::from_static(b"a few bytes, then nothing"))
            .unwrap();
        let started = Instant::now();
        let body = limit_body(Trickle(rx), limits(Duration::from_millis(50), 0));
        let err = collect(body).await.unwrap_err();
        assert!(matches!(err, BodyError::TimedOut { .. }), "{err:?}");
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(tx);
    }

    #[tokio::test]
    async fn bytes_received_extend_the_deadline() {
        let (tx, rx) = mpsc::unbounded_channel();
        // 100 bytes at one byte a second earn 100 s past the 20 ms allowance.
        tx.send(Bytes::from(vec![b'x'; 100])).unwrap();
        let reading = tokio::spawn(collect(limit_body(
            Trickle(rx),
            limits(Duration::from_millis(20), 1),
        )));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !reading.is_finished(),
            "the body failed inside its allowance"
        );
        tx.send(Bytes::from_static(b"end")).unwrap();
        drop(tx);
        let whole = reading.await.unwrap().unwrap();
        assert_eq!(whole.len(), 103);
    }

    #[tokio::test]
    async fn a_body_read_without_waiting_sets_no_timer() {
        let mut timed = Timed {
            inner: Full::new(Bytes::from_static(b"whole")),
            started: Instant::now(),
            timer: None,
            received: 0,
            limits: limits(Duration::from_secs(5), 1),
        };
        let frame = timed.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "whole");
        assert!(timed.frame().await.is_none());
        assert!(timed.timer.is_none());
        assert_eq!(timed.received, 5);

        // One that has to wait gets its timer, due at the allowance plus what it earned.
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(Bytes::from_static(b"12345")).unwrap();
        let started = Instant::now();
        let mut timed = Timed {
            inner: Trickle(rx),
            started,
            timer: None,
            received: 0,
            limits: limits(Duration::from_secs(5), 1),
        };
        timed.frame().await.unwrap().unwrap();
        let pending = futures_util::poll!(timed.frame());
        assert!(pending.is_pending());
        let timer = timed.timer.as_ref().expect("a timer once it waits");
        assert_eq!(timer.deadline(), started + Duration::from_secs(10));
        drop(tx);
    }
}
