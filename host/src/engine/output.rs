//! Guest stdout/stderr capture that never fails the guest: bytes past the cap are dropped
//! (and counted), and each call drains what it printed so warm instances start clean.

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

/// A shared, bounded buffer of what a guest printed.
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    bytes: BytesMut,
    capacity: usize,
    dropped: usize,
}

impl CapturedOutput {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                bytes: BytesMut::new(),
                capacity,
                dropped: 0,
            })),
        }
    }

    /// Everything printed since the last `take`, plus a note of what was dropped.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = c.bytes.split().to_vec();
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
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = c.capacity.saturating_sub(c.bytes.len());
        let kept = room.min(buf.len());
        c.bytes.extend_from_slice(&buf[..kept]);
        c.dropped += buf.len() - kept;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
