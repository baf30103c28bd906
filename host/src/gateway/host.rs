//! The host name a request was sent to, which routes it.

use hyper::header::{self, HeaderValue};

/// A request's host name: lower-cased, without the port or a trailing dot. Kept as the
/// `Host` header itself (a reference count, no copy) when the header is already in that
/// form, as nearly every client sends it.
pub(super) enum HostName {
    /// The first `len` bytes of the `Host` header.
    Header(HeaderValue, usize),
    /// Rewritten from the URI's authority or an unusual `Host` header.
    Owned(String),
}

impl std::ops::Deref for HostName {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            // Only ASCII letters, digits, dots and dashes are kept this way.
            HostName::Header(value, len) => {
                std::str::from_utf8(&value.as_bytes()[..*len]).unwrap_or_default()
            }
            HostName::Owned(name) => name,
        }
    }
}

impl std::fmt::Display for HostName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// The host name `req` was sent to ("" when it names none that parses).
pub(super) fn host_of<B>(req: &hyper::Request<B>) -> HostName {
    if req.uri().authority().is_none()
        && let Some(value) = req.headers().get(header::HOST)
        && let Some(len) = plain_host_len(value.as_bytes())
    {
        return HostName::Header(value.clone(), len);
    }
    HostName::Owned(parsed_host(req))
}

/// The length of the host part of `host[:port]` when the host is already lower-case
/// letters, digits, dots and dashes without a trailing dot and the port is 1–5 digits:
/// what parsing it as an authority and normalizing the host would give back unchanged.
fn plain_host_len(bytes: &[u8]) -> Option<usize> {
    let len = bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len());
    let (name, port) = bytes.split_at(len);
    let name_ok = !name.is_empty()
        && !name.ends_with(b".")
        && name
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let port_ok = match port.split_first() {
        None => true,
        Some((_, digits)) => {
            (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
        }
    };
    (name_ok && port_ok).then_some(len)
}

/// The general case: the URI's authority, else the `Host` header parsed as one.
pub(super) fn parsed_host<B>(req: &hyper::Request<B>) -> String {
    let parsed: hyper::http::uri::Authority;
    let host = match req.uri().authority() {
        Some(authority) => authority.host(),
        None => match req.headers().get(header::HOST).map(|h| h.to_str()) {
            Some(Ok(h)) if let Ok(authority) = h.parse() => {
                parsed = authority;
                parsed.host()
            }
            _ => "",
        },
    };
    let mut host = host.trim_end_matches('.').to_owned();
    host.make_ascii_lowercase();
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(host: &[u8]) -> hyper::Request<()> {
        let mut req = hyper::Request::new(());
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_bytes(host).unwrap());
        req
    }

    #[test]
    fn host_without_port_and_case() {
        let req = with_host(b"Hello-Hello.LOCALHOST:8000");
        assert_eq!(&*host_of(&req), "hello-hello.localhost");
        let req = hyper::Request::builder()
            .uri("http://127.0.0.1:9/")
            .header("host", "other.localhost")
            .body(())
            .unwrap();
        assert_eq!(&*host_of(&req), "127.0.0.1");
    }

    #[test]
    fn a_plain_host_header_is_kept_and_reads_as_the_parsed_one() {
        let cases: &[&[u8]] = &[
            b"127.0.0.1:8111",
            b"hello-hello.localhost",
            b"hello-hello.localhost:80",
            b"a.b.c:65535",
            b"a:99999",
            b"a:123456",
            b"a:",
            b":80",
            b"",
            b"x.",
            b"x.:80",
            b"X.example",
            b"[::1]:8080",
            b"a_b.example",
            b"a b",
            b"user@host",
            b"h:8o",
            b"-.-",
            b"..",
        ];
        for &case in cases {
            let req = with_host(case);
            let name = host_of(&req);
            assert_eq!(
                &*name,
                parsed_host(&req),
                "{:?}",
                String::from_utf8_lossy(case)
            );
            if plain_host_len(case).is_some() {
                assert!(matches!(name, HostName::Header(..)), "{case:?}");
            }
        }
        assert!(matches!(
            host_of(&with_host(b"127.0.0.1:8111")),
            HostName::Header(..)
        ));
        assert!(matches!(host_of(&with_host(b"Upper")), HostName::Owned(_)));
    }
}
