//! Guest stdout/stderr capture that never fails the guest: bytes past the cap are dropped
//! (and counted), and each call drains what it printed so warm instances start clean.
//! While a call runs, its complete lines go to its log as they are written (followers see
//! a long call's progress); the rest goes when the call ends.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Which of a guest's output streams a text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// Keeps what a guest printed with the call or app it belongs to (the functions layer's
/// call logs); the host's own log gets the text it hands back.
pub trait OutputSink: Send + Sync {
    /// Records `text`, what `function` printed on `stream` during one call; returns it as
    /// it may be shown elsewhere (secret values removed).
    fn output(&self, function: &str, stream: OutputStream, text: &str) -> String;
    /// Records that a call of `function` failed, and why.
    fn failed(&self, function: &str, error: &str);
}

/// The output sink of an instance that runs several calls at once: a guest's output
/// cannot be told apart by call, so each text goes to the log of every call in flight
/// when it is handed on (exactly its own for a call alone in its instance), or to the
/// latest call's when none is.
#[derive(Default)]
pub(crate) struct CallsOutput {
    calls: Mutex<CallSinks>,
}

#[derive(Default)]
struct CallSinks {
    in_flight: Vec<(u64, Arc<dyn OutputSink>)>,
    latest: Option<Arc<dyn OutputSink>>,
}

impl CallsOutput {
    fn sinks(&self) -> std::sync::MutexGuard<'_, CallSinks> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Call `key` is in flight; its output goes to `sink`.
    pub(crate) fn enter(&self, key: u64, sink: Arc<dyn OutputSink>) {
        let mut sinks = self.sinks();
        sinks.latest = Some(sink.clone());
        sinks.in_flight.push((key, sink));
    }

    /// Call `key` finished.
    pub(crate) fn leave(&self, key: u64) {
        self.sinks().in_flight.retain(|(k, _)| *k != key);
    }

    fn targets(&self) -> Vec<Arc<dyn OutputSink>> {
        let sinks = self.sinks();
        match sinks.in_flight.is_empty() {
            true => sinks.latest.iter().cloned().collect(),
            false => sinks.in_flight.iter().map(|(_, s)| s.clone()).collect(),
        }
    }
}

impl OutputSink for CallsOutput {
    fn output(&self, function: &str, stream: OutputStream, text: &str) -> String {
        // Every call of one function has the same secrets: any call's log redacts them
        // for the host's log alike.
        let mut shown = None;
        for sink in self.targets() {
            let text = sink.output(function, stream, text);
            shown.get_or_insert(text);
        }
        shown.unwrap_or_else(|| text.to_owned())
    }

    fn failed(&self, function: &str, error: &str) {
        for sink in self.targets() {
            sink.failed(function, error);
        }
    }
}

/// A shared, bounded buffer of what a guest printed.
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    bytes: BytesMut,
    capacity: usize,
    dropped: usize,
    /// How many bytes at the front were already handed on as they were written (they
    /// stay for `peek`, which reads a panic's message).
    forwarded: usize,
    live: Option<Live>,
}

/// Where the current call's lines go as they are written.
#[derive(Clone)]
pub(crate) struct Live {
    /// The call's log.
    pub(crate) sink: Arc<dyn OutputSink>,
    /// App and function, for the host's log.
    pub(crate) names: Arc<(String, String)>,
    /// Which stream this is.
    pub(crate) stream: OutputStream,
}

impl CapturedOutput {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                bytes: BytesMut::new(),
                capacity,
                dropped: 0,
                forwarded: 0,
                live: None,
            })),
        }
    }

    /// Hands complete lines to `live` as they are written from now on.
    pub(crate) fn follow(&self, live: Live) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).live = Some(live);
    }

    /// Everything printed since the last `take` and not yet handed on, plus a note of
    /// what was dropped.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let forwarded = std::mem::take(&mut c.forwarded);
        // Most calls print nothing: skip the split, which makes the buffer shared.
        if c.bytes.is_empty() && c.dropped == 0 {
            return Vec::new();
        }
        let mut out = c.bytes.split().to_vec();
        out.drain(..forwarded.min(out.len()));
        if c.dropped > 0 {
            out.extend_from_slice(
                format!("\n[{} bytes of output dropped]\n", c.dropped).as_bytes(),
            );
            c.dropped = 0;
        }
        out
    }

    /// Everything printed since the last `take`, left in place.
    pub(crate) fn peek(&self) -> Vec<u8> {
        let c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.bytes.to_vec()
    }
}

/// Sends what a guest printed to its call's log (when there is one) and to the host's log,
/// one event per line.
pub(crate) fn emit(
    app: &str,
    function: &str,
    stream: OutputStream,
    text: &str,
    sink: Option<&Arc<dyn OutputSink>>,
) {
    let text = match sink {
        Some(sink) => std::borrow::Cow::Owned(sink.output(function, stream, text)),
        None => std::borrow::Cow::Borrowed(text),
    };
    for line in text.lines() {
        tracing::info!(target: "guest", app, function, stream = stream.as_str(), "{line}");
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let lines = {
            let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let room = c.capacity.saturating_sub(c.bytes.len());
            let kept = room.min(buf.len());
            c.bytes.extend_from_slice(&buf[..kept]);
            c.dropped += buf.len() - kept;
            let start = c.forwarded;
            match (&c.live, c.bytes[start..].iter().rposition(|b| *b == b'\n')) {
                (Some(live), Some(end)) => {
                    let end = start + end + 1;
                    let text = String::from_utf8_lossy(&c.bytes[start..end]).into_owned();
                    let live = live.clone();
                    c.forwarded = end;
                    Some((live, text))
                }
                _ => None,
            }
        };
        // Outside the lock: the log takes its own.
        if let Some((live, text)) = lines {
            let (app, function) = (&live.names.0, &live.names.1);
            emit(app, function, live.stream, &text, Some(&live.sink));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
