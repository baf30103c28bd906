//! A `wasi:http` guest's response body, read ahead before hyper sees it. Given a body it
//! cannot read yet, hyper sends the head alone, then the body, then the chunked encoding's
//! end: three writes, and three wake-ups of the client, for a short answer. A WASIp3 guest
//! returns its response head before it writes the body (its own task writes the stream
//! after `handle` returned); a WASIp2 guest set its head while it ran, and either wrote
//! its whole body before returning or, still running, goes on in a task of its own.
//! Reading what the guest has written, and waiting a few scheduler turns for what it
//! writes next, lets a short body go out with its head in one write and a
//! `content-length`; a body still coming after that streams as before.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

/// Scheduler turns given to the guest, in all, to produce more of its body.
const TURNS: usize = 4;

/// Bytes read ahead at most; past them the rest streams.
const LIMIT: usize = 64 * 1024;

/// A response body `B` with the frames the guest had already produced read ahead; `H` is
/// held until the body is sent or dropped (a service's input of its instance).
pub struct ReadAhead<B: Body, H> {
    frames: VecDeque<Frame<Bytes>>,
    /// The error that ended the body while it was read ahead, sent after `frames`.
    failed: Option<B::Error>,
    /// What is still to come; `None` once the guest's body ended.
    rest: Option<B>,
    /// Bytes in `frames`.
    len: u64,
    _held: H,
}

/// How far a look at the body got.
enum Taken {
    /// The body ended (or failed) and everything is in `frames`.
    Ended,
    /// `LIMIT` bytes are read ahead; the rest streams.
    Full,
    /// The guest has not produced the next frame yet.
    Pending,
}

impl<B: Body<Data = Bytes> + Unpin, H> ReadAhead<B, H> {
    fn new(held: H) -> Self {
        Self {
            frames: VecDeque::new(),
            failed: None,
            rest: None,
            len: 0,
            _held: held,
        }
    }

    /// Reads what of `body` the guest produces within a few scheduler turns.
    async fn read(mut body: B, held: H) -> Self {
        let mut ahead = Self::new(held);
        for turn in 0..=TURNS {
            match ahead.take(&mut body) {
                Taken::Ended => return ahead,
                Taken::Full => break,
                Taken::Pending if turn < TURNS => tokio::task::yield_now().await,
                Taken::Pending => break,
            }
        }
        ahead.rest = Some(body);
        ahead
    }

    /// `response` with what of its body the guest produces within a few scheduler turns
    /// read ahead.
    pub async fn response(response: hyper::Response<B>, held: H) -> hyper::Response<Self> {
        let (head, body) = response.into_parts();
        hyper::Response::from_parts(head, Self::read(body, held).await)
    }

    /// Moves the frames `body` has ready into `frames`.
    fn take(&mut self, body: &mut B) -> Taken {
        loop {
            // Polled without a waker on purpose: hyper polls again with its own.
            match body.frame().now_or_never() {
                Some(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.len += data.len() as u64;
                    }
                    self.frames.push_back(frame);
                    if self.len >= LIMIT as u64 {
                        return Taken::Full;
                    }
                }
                Some(Some(Err(e))) => {
                    self.failed = Some(e);
                    return Taken::Ended;
                }
                Some(None) => return Taken::Ended,
                None => return Taken::Pending,
            }
        }
    }
}

impl<B, H: Unpin> Body for ReadAhead<B, H>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(frame) = self.frames.pop_front() {
            if let Some(data) = frame.data_ref() {
                self.len -= data.len() as u64;
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
            && self.failed.is_none()
            && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.rest {
            Some(rest) => {
                let mut hint = rest.size_hint();
                hint.set_lower(hint.lower() + self.len);
                if let Some(upper) = hint.upper() {
                    hint.set_upper(upper + self.len);
                }
                hint
            }
            // Trailers need chunked encoding, which a sized body would not get.
            None if self.failed.is_some() || self.frames.iter().any(Frame::is_trailers) => {
                SizeHint::new()
            }
            None => SizeHint::with_exact(self.len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use wasmtime_wasi_http::WasiBody;

    fn boxed<B>(body: B) -> WasiBody
    where
        B: Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
    {
        body.boxed_unsync()
    }

    type Sent = Result<Frame<Bytes>, wasmtime_wasi_http::Error>;

    fn frames(
        rx: tokio::sync::mpsc::Receiver<Sent>,
    ) -> impl futures_util::Stream<Item = Sent> + Send + 'static {
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) })
    }

    #[tokio::test]
    async fn a_finished_body_is_read_whole_and_sized() {
        let body = boxed(Full::new(Bytes::from_static(b"hello")).map_err(|e| match e {}));
        let ahead = ReadAhead::read(body, ()).await;
        assert!(ahead.rest.is_none());
        assert_eq!(ahead.size_hint().exact(), Some(5));
        let bytes = ahead.collect().await.map(|c| c.to_bytes());
        assert_eq!(bytes.ok().as_deref(), Some(&b"hello"[..]));
    }

    #[tokio::test]
    async fn frames_written_a_turn_later_are_read_ahead() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let writer = tokio::spawn(async move {
            for part in [&b"a"[..], b"b"] {
                let frame = Ok::<_, wasmtime_wasi_http::Error>(Frame::data(Bytes::from(part)));
                let _ = tx.send(frame).await;
                tokio::task::yield_now().await;
            }
        });
        let body = boxed(StreamBody::new(frames(rx)));
        let mut ahead = ReadAhead::read(body, ()).await;
        writer.await.ok();
        assert_eq!(ahead.frames.len(), 2);
        assert_eq!(ahead.size_hint().exact(), Some(2));
        ahead.frame().await;
        assert_eq!(ahead.size_hint().exact(), Some(1), "what is left");
    }

    #[tokio::test]
    async fn a_body_still_streaming_is_handed_on_unsized() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let frame = Ok::<_, wasmtime_wasi_http::Error>(Frame::data(Bytes::from_static(b"x")));
        tx.send(frame).await.ok();
        let body = boxed(StreamBody::new(frames(rx)));
        let mut ahead = ReadAhead::read(body, ()).await;
        assert!(ahead.rest.is_some() && !ahead.is_end_stream());
        assert_eq!(ahead.size_hint().exact(), None);
        let first = ahead.frame().await.and_then(|f| f.ok()?.into_data().ok());
        assert_eq!(first.as_deref(), Some(&b"x"[..]));
        let late = Ok(Frame::data(Bytes::from_static(b"y")));
        tx.send(late).await.ok();
        drop(tx);
        let rest = ahead.collect().await.map(|c| c.to_bytes());
        assert_eq!(rest.ok().as_deref(), Some(&b"y"[..]));
    }
}
