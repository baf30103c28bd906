//! A plain `wasi:http/proxy` component that knows nothing of wasmhost.
//!
//! `GET /` → `hello from wasi:http`; `POST /echo` streams the request body back chunk by
//! chunk; `GET /no-response` drops its response outparam unanswered and `GET /forget`
//! leaks it (as a guest that failed mid-way does); `GET /outbound` tries an outbound
//! request (which the host refuses unless `--allow-outbound` allows `https://example.com`);
//! `GET /fetch?url=<url>` fetches `url` (absolute, or a bare path with no host) and
//! answers `<status> <body>` or `refused: <wasi:http error code>`;
//! `GET /visits` counts the requests this instance served (state that lives as long as a
//! warm instance); `GET /linger` answers like `/visits`, then waits 3 ms before it returns
//! (work after the response); `GET /trap` panics; anything else → 404.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Proxy);

struct Proxy;

/// Requests served by this instance.
static VISITS: AtomicU64 = AtomicU64::new(0);

impl wasip2::exports::http::incoming_handler::Guest for Proxy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let method = request.method();
        match (&method, path.as_str()) {
            (Method::Get, "/") => reply(out, 200, b"hello from wasi:http"),
            (Method::Get, "/visits") => {
                let n = VISITS.fetch_add(1, Ordering::Relaxed) + 1;
                reply(out, 200, n.to_string().as_bytes());
            }
            (Method::Get, "/linger") => {
                let n = VISITS.fetch_add(1, Ordering::Relaxed) + 1;
                reply(out, 200, n.to_string().as_bytes());
                wasip2::clocks::monotonic_clock::subscribe_duration(3_000_000).block();
            }
            (Method::Get, "/trap") => {
                VISITS.fetch_add(1, Ordering::Relaxed);
                panic!("asked to trap");
            }
            (Method::Post, "/echo") => echo(request, out),
            (Method::Get, p) if p.starts_with("/fetch?url=") => {
                let text = fetch(&p["/fetch?url=".len()..]);
                reply(out, 200, text.as_bytes());
            }
            // Return without setting a response: the host answers 500.
            (Method::Get, "/no-response") => drop(out),
            (Method::Get, "/forget") => std::mem::forget(out),
            (Method::Get, "/outbound") => {
                let attempt = OutgoingRequest::new(Fields::new());
                let _ = attempt.set_scheme(Some(&Scheme::Https));
                let _ = attempt.set_authority(Some("example.com"));
                let text = match outgoing_handler::handle(attempt, None) {
                    Ok(_) => "outbound request allowed".to_string(),
                    Err(e) => format!("outbound request refused: {e:?}"),
                };
                reply(out, 200, text.as_bytes());
            }
            _ => reply(out, 404, b"not found"),
        }
    }
}

/// One GET of `url`, described as `<status> <body>` or `refused: <error code>`.
fn fetch(url: &str) -> String {
    let request = OutgoingRequest::new(Fields::new());
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Some(Scheme::Https), rest),
        Some((_, rest)) => (Some(Scheme::Http), rest),
        None => (None, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(0) => (None, rest),
        Some(i) => (Some(&rest[..i]), &rest[i..]),
        None => (Some(rest), "/"),
    };
    let _ = request.set_scheme(scheme.as_ref());
    let _ = request.set_authority(authority);
    let _ = request.set_path_with_query(Some(path));
    let pending = match outgoing_handler::handle(request, None) {
        Ok(pending) => pending,
        Err(e) => return format!("refused: {e:?}"),
    };
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return format!("refused: {e:?}"),
        _ => return "refused: no response".into(),
    };
    let mut body = Vec::new();
    if let Ok(incoming) = response.consume()
        && let Ok(mut stream) = incoming.stream()
    {
        let _ = stream.read_to_end(&mut body);
    }
    format!("{} {}", response.status(), String::from_utf8_lossy(&body))
}

/// Answers with `status` and a whole body.
fn reply(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.set("content-type", &[b"text/plain; charset=utf-8".to_vec()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        let _ = Write::write_all(&mut stream, body);
        let _ = Write::flush(&mut stream);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

/// Streams the request body back as it arrives.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let response = OutgoingResponse::new(Fields::new());
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    let (Ok(incoming), Ok(mut sink)) = (request.consume(), outgoing.write()) else {
        return;
    };
    if let Ok(mut source) = incoming.stream() {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match Read::read(&mut source, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if Write::write_all(&mut sink, &buf[..n])
                        .and_then(|()| Write::flush(&mut sink))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    }
    drop(sink);
    let _ = OutgoingBody::finish(outgoing, None);
}
