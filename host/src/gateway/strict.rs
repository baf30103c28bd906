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

/// What a head's lines so far say about the body after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length` framed (or no body), with the length named so far.
    Length(Option<u64>),
    /// Chunked, an upgrade, `CONNECT`, or a head too odd to follow past.
    Unknown,
}

/// Follows HTTP/1 request heads in a byte stream (see the module's documentation). Works a
/// line at a time on the bytes as read; only a line cut by the end of a read is copied.
#[derive(Debug)]
pub(super) struct HeadChecker {
    state: State,
    /// Bytes of the current head so far.
    len: usize,
    /// The current line's start, when a read ended inside it.
    partial: Vec<u8>,
    framing: Framing,
    /// Largest head worth checking; hyper itself refuses larger ones (431).
    max_head: usize,
}

impl HeadChecker {
    /// Checks heads of at most `max_head` bytes.
    pub(super) fn new(max_head: usize) -> Self {
        Self {
            state: State::Head,
            len: 0,
            partial: Vec::new(),
            framing: Framing::Length(None),
            max_head,
        }
    }

    /// A checker that has stood aside from the start (HTTP/2).
    pub(super) fn off() -> Self {
        Self {
            state: State::Off,
            ..Self::new(0)
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
                    let skip;
                    (skip, self.state) = skip_body(remaining, bytes.len() - i);
                    i += skip;
                }
                State::Head => {
                    let rest = &bytes[i..];
                    let Some(lf) = memchr::memchr(b'\n', rest) else {
                        // A line cut by the end of the read: kept for the next one.
                        if self.len + rest.len() > self.max_head {
                            self.stand_aside();
                            return None;
                        }
                        self.len += rest.len();
                        self.partial.extend_from_slice(rest);
                        return None;
                    };
                    // In the order a byte-by-byte reader meets them: the line's other
                    // bytes overflowing the limit, then a bare LF, then the LF overflowing.
                    if self.len + lf > self.max_head {
                        self.stand_aside();
                        return None;
                    }
                    let before = if lf > 0 {
                        rest.get(lf - 1)
                    } else {
                        self.partial.last()
                    };
                    if before != Some(&b'\r') {
                        bytes[i + lf] = 0;
                        self.stand_aside();
                        return Some(i + lf);
                    }
                    if self.len + lf >= self.max_head {
                        self.stand_aside();
                        return None;
                    }
                    let first = self.len == self.partial.len();
                    self.len += lf + 1;
                    if self.partial.is_empty() {
                        self.line(&bytes[i..=i + lf], first);
                    } else {
                        let mut line = std::mem::take(&mut self.partial);
                        line.extend_from_slice(&bytes[i..=i + lf]);
                        self.line(&line, first);
                        line.clear();
                        self.partial = line;
                    }
                    i += lf + 1;
                }
            }
        }
        None
    }

    /// Takes one whole line of a head, CRLF included; `first` when it opens the head.
    fn line(&mut self, line: &[u8], first: bool) {
        if line == b"\r\n" {
            // Empty lines before the request line are allowed (RFC 9112 §2.2); after it,
            // one ends the head.
            if !first {
                self.state = match self.framing {
                    Framing::Length(n) => match n.unwrap_or(0) {
                        0 => State::Head,
                        n => State::Body(n),
                    },
                    Framing::Unknown => State::Off,
                };
                self.framing = Framing::Length(None);
            }
            self.len = 0;
            return;
        }
        let Framing::Length(length) = self.framing else {
            return;
        };
        self.framing = match std::str::from_utf8(&line[..line.len() - 2]) {
            Ok(request_line) if first && request_line.starts_with("CONNECT ") => Framing::Unknown,
            Ok(_) if first => Framing::Length(length),
            Ok(field) => header_framing(field, length),
            Err(_) => Framing::Unknown,
        };
    }

    fn stand_aside(&mut self) {
        self.state = State::Off;
        self.partial = Vec::new();
    }
}

/// Steps over at most `available` bytes of a body with `remaining` still to come: how many
/// bytes, and where the reader is after them.
fn skip_body(remaining: u64, available: usize) -> (usize, State) {
    let skip = usize::try_from(remaining)
        .unwrap_or(usize::MAX)
        .min(available);
    match remaining - skip as u64 {
        0 => (skip, State::Head),
        left => (skip, State::Body(left)),
    }
}

/// The framing after one header field line, given the length named before it.
fn header_framing(field: &str, length: Option<u64>) -> Framing {
    let Some((name, value)) = field.split_once(':') else {
        return Framing::Unknown;
    };
    let name = name.trim();
    if name.eq_ignore_ascii_case("transfer-encoding") || name.eq_ignore_ascii_case("upgrade") {
        return Framing::Unknown;
    }
    if !name.eq_ignore_ascii_case("content-length") {
        return Framing::Length(length);
    }
    match value.trim().parse::<u64>() {
        Ok(n) if length.is_none_or(|l| l == n) => Framing::Length(Some(n)),
        _ => Framing::Unknown,
    }
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

    /// The checker as it was first written, a byte at a time with the whole head kept:
    /// the line-at-a-time one must read every stream exactly as it did.
    struct ByteAtATime {
        state: State,
        head: Vec<u8>,
        max_head: usize,
    }

    impl ByteAtATime {
        fn scan(&mut self, bytes: &mut [u8]) -> Option<usize> {
            for (i, b) in bytes.iter_mut().enumerate() {
                match self.state {
                    State::Off => return None,
                    State::Body(1) => self.state = State::Head,
                    State::Body(n) => self.state = State::Body(n - 1),
                    State::Head => {
                        if self.byte(b) {
                            return Some(i);
                        }
                    }
                }
            }
            None
        }

        fn byte(&mut self, b: &mut u8) -> bool {
            if *b == b'\n' && self.head.last() != Some(&b'\r') {
                *b = 0;
                self.state = State::Off;
                return true;
            }
            if self.head.len() >= self.max_head {
                self.state = State::Off;
                return false;
            }
            self.head.push(*b);
            if *b != b'\n' {
                return false;
            }
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
    }

    fn framing(head: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.split("\r\n");
        if lines.next()?.starts_with("CONNECT ") {
            return None;
        }
        let mut length = None;
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':')?;
            match name.trim().to_ascii_lowercase().as_str() {
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

    #[test]
    fn reads_every_stream_as_the_byte_at_a_time_checker_did() {
        const PIECES: &[&[u8]] = &[
            b"GET / HTTP/1.1",
            b"POST /x HTTP/1.1",
            b"CONNECT a:1 HTTP/1.1",
            b"\r\n",
            b"\r\n",
            b"\r\n",
            b"\n",
            b"\r",
            b"Host: a",
            b"Content-Length: 3",
            b"content-length:2 ",
            b"Content-Length: 0",
            b"Transfer-Encoding: chunked",
            b"Upgrade: x",
            b"abc",
            b":",
            b"\xff",
            b" ",
            b"X-A: b\rc",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let input: Vec<u8> = (0..1 + next(24))
                .flat_map(|_| PIECES[next(PIECES.len())].iter().copied())
                .collect();
            let max_head = [6, 20, 48, 1 << 16][next(4)];
            let (mut old, mut new) = (input.clone(), input.clone());
            let mut reference = ByteAtATime {
                state: State::Head,
                head: Vec::new(),
                max_head,
            };
            let mut checker = HeadChecker::new(max_head);
            let mut start = 0;
            while start < input.len() {
                let end = (start + 1 + next(12)).min(input.len());
                let found = (
                    reference.scan(&mut old[start..end]),
                    checker.scan(&mut new[start..end]),
                );
                assert_eq!(found.0, found.1, "{:?}", String::from_utf8_lossy(&input));
                assert_eq!(
                    reference.state,
                    checker.state,
                    "{:?}",
                    String::from_utf8_lossy(&input)
                );
                start = end;
            }
            assert_eq!(old, new, "{:?}", String::from_utf8_lossy(&input));
        }
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
