//! Refuses HTTP/1 request heads whose lines end in a bare LF. hyper's parser (httparse)
//! accepts them, and a proxy in front that splits lines only on CRLF would then read a
//! different request than the host does (request smuggling). No hyper setting turns this
//! off, so the connection's bytes pass through [`StrictHeads`], which follows message
//! boundaries and replaces a bare LF inside a head, and what follows it in that read, with
//! an invalid header line (`NUL CRLF CRLF`): hyper then refuses the head itself with 400
//! and closes the connection.
//!
//! It checks every head of a keep-alive connection whose bodies are framed by
//! `Content-Length`; after a chunked body, an upgrade or `CONNECT` it stands aside (it
//! would have to decode chunks to find the next head), as it does for HTTP/2.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where the reader is in the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// In a request head (or before one).
    Head,
    /// In a body of this many bytes still to come.
    Body(u64),
    /// No longer checking this connection.
    Off,
}

/// Follows HTTP/1 request heads in a byte stream (see the module's documentation).
#[derive(Debug)]
pub(super) struct HeadChecker {
    state: State,
    /// The current head so far.
    head: Vec<u8>,
    /// Largest head worth checking; hyper itself refuses larger ones (431).
    max_head: usize,
}

impl HeadChecker {
    /// Checks heads of at most `max_head` bytes.
    pub(super) fn new(max_head: usize) -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            max_head,
        }
    }

    /// A checker that has stood aside from the start (HTTP/2).
    pub(super) fn off() -> Self {
        Self {
            state: State::Off,
            head: Vec::new(),
            max_head: 0,
        }
    }

    /// Looks at bytes just read, in order; a bare LF in a head becomes NUL and its index
    /// is returned (the checker then stands aside).
    pub(super) fn scan(&mut self, bytes: &mut [u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Off => return None,
                State::Body(remaining) => {
                    let skip = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += skip;
                    let left = remaining - skip as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::Head => {
                    if self.head_byte(&mut bytes[i]) {
                        return Some(i);
                    }
                    i += 1;
                }
            }
        }
        None
    }

    /// Takes one byte of a head; true if it was a bare LF (now NUL).
    fn head_byte(&mut self, b: &mut u8) -> bool {
        if *b == b'\n' && self.head.last() != Some(&b'\r') {
            *b = 0;
            self.stand_aside();
            return true;
        }
        if self.head.len() >= self.max_head {
            self.stand_aside();
            return false;
        }
        self.head.push(*b);
        if *b != b'\n' {
            return false;
        }
        // Empty lines before the request line are allowed (RFC 9112 §2.2).
        if self.head == b"\r\n" {
            self.head.clear();
        } else if self.head.ends_with(b"\r\n\r\n") {
            self.state = match framing(&self.head) {
                Some(0) => State::Head,
                Some(n) => State::Body(n),
                None => State::Off,
            };
            self.head.clear();
        }
        false
    }

    fn stand_aside(&mut self) {
        self.state = State::Off;
        self.head = Vec::new();
    }
}

/// The length of the body that follows `head`, when it is framed by `Content-Length` (or
/// has none); `None` when the connection may not go on as plain HTTP/1 heads and bodies.
fn framing(head: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next()?;
    if request_line.starts_with("CONNECT ") {
        return None;
    }
    let mut length = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "transfer-encoding" | "upgrade" => return None,
            "content-length" => {
                let n: u64 = value.trim().parse().ok()?;
                if length.is_some_and(|l| l != n) {
                    return None;
                }
                length = Some(n);
            }
            _ => {}
        }
    }
    Some(length.unwrap_or(0))
}

/// A connection whose incoming bytes pass through a [`HeadChecker`].
pub(super) struct StrictHeads<T> {
    inner: T,
    checker: HeadChecker,
}

impl<T> StrictHeads<T> {
    /// Wraps `inner`.
    pub(super) fn new(inner: T, checker: HeadChecker) -> Self {
        Self { inner, checker }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StrictHeads<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && let Some(at) = this.checker.scan(&mut buf.filled_mut()[before..])
        {
            // httparse waits for a line's end before judging it: end the bad line here
            // (the rest of this read is dropped; hyper closes the connection after its 400).
            buf.set_filled(before + at + 1);
            let end = b"\r\n\r\n";
            buf.put_slice(&end[..end.len().min(buf.remaining())]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StrictHeads<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Fuzzing entry: `bytes` read in pieces ending at `cuts`. Input whose every LF follows a
/// CR passes untouched; a bare LF is reported only where there is one.
#[cfg(fuzzing)]
pub fn fuzz_heads(bytes: &[u8], cuts: &[usize]) {
    let mut out = bytes.to_vec();
    let mut checker = HeadChecker::new(1 << 16);
    let mut start = 0;
    let mut found = false;
    let len = out.len();
    for end in cuts.iter().map(|&c| c.min(len)).chain([len]) {
        if end < start {
            continue;
        }
        found |= checker.scan(&mut out[start..end]).is_some();
        start = end;
    }
    let bare = bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'));
    if !bare {
        assert_eq!(out, bytes, "CRLF-only input must pass untouched");
    }
    assert!(!found || bare, "a bare LF reported where there is none");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and returns what hyper would read.
    fn feed(input: &[u8], step: usize) -> Vec<u8> {
        let mut checker = HeadChecker::new(1 << 16);
        let mut out = input.to_vec();
        for piece in out.chunks_mut(step) {
            checker.scan(piece);
        }
        out
    }

    #[test]
    fn crlf_requests_pass_untouched_whatever_the_reads() {
        let two = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab\ncdGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for step in [1, 2, 7, two.len()] {
            assert_eq!(feed(two, step), two.to_vec(), "step {step}");
        }
        assert_eq!(
            feed(b"\r\nGET / HTTP/1.1\r\n\r\n", 3),
            b"\r\nGET / HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn a_bare_lf_in_any_head_becomes_nul() {
        assert_eq!(feed(b"GET / HTTP/1.1\nHost: a\n\n", 4)[14], 0);
        let second =
            b"GET / HTTP/1.1\r\nContent-Length: 2\r\n\r\n\n\nGET / HTTP/1.1\r\nHost: a\n\r\n";
        let out = feed(second, 5);
        assert_eq!(&out[..40], &second[..40], "the body's LFs are not a head's");
        assert!(
            out[40..].contains(&0),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(feed(b"\nGET / HTTP/1.1\r\n\r\n", 1)[0], 0);
    }

    #[test]
    fn stands_aside_where_it_cannot_follow_the_stream() {
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n";
        assert_eq!(feed(chunked, 8), chunked.to_vec());
        let upgrade = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\n\n";
        assert_eq!(feed(upgrade, 8), upgrade.to_vec());
        let mut off = HeadChecker::off();
        let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\n".to_vec();
        off.scan(&mut h2);
        assert_eq!(h2.last(), Some(&b'\n'));
    }
}
