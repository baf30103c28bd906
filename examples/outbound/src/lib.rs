//! Outgoing HTTP from guests, each allowed only what its attribute declares:
//! `GET /?url=http://localhost:PORT/path` (endpoint `fetch`, allowed `http://localhost:*`)
//! fetches the URL and answers with what came back; `follow=true` follows one redirect
//! as a guest would by hand (the host checks the new target again). `fetch-nowhere`
//! declares nothing, and the function `fetch_fn` declares `http://localhost:*` too.

use std::io::Read;

use schemars::JsonSchema;
use serde::Serialize;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, OutgoingRequest, Scheme};
use wasmhost::Json;

/// What one request returned, or why it failed.
#[derive(Debug, Default, Serialize, JsonSchema)]
struct Fetched {
    /// The response status, when there was a response.
    status: Option<u16>,
    /// Its `Location` header.
    location: Option<String>,
    /// Its body as text.
    body: Option<String>,
    /// The `wasi:http` error code when the request failed (`HttpRequestDenied` when the
    /// host refused it).
    error: Option<String>,
}

/// Fetches `url` (allowed: `http://localhost:*`).
#[wasmhost::endpoint(allowed_outbound_hosts = ["http://localhost:*"])]
fn fetch(url: String, follow: Option<bool>) -> Json<Fetched> {
    Json(fetch_following(&url, follow.unwrap_or(false)))
}

/// Fetches `url` with no outbound access declared.
#[wasmhost::endpoint]
fn fetch_nowhere(url: String) -> Json<Fetched> {
    Json(get(&url))
}

/// Fetches `url` from a function (allowed: `http://localhost:*`) and returns the body or
/// the error.
#[wasmhost::function(allowed_outbound_hosts = ["http://localhost:*"])]
fn fetch_fn(url: String) -> String {
    let fetched = get(&url);
    match (fetched.body, fetched.error) {
        (Some(body), _) => body,
        (None, Some(error)) => format!("error: {error}"),
        (None, None) => "no body".into(),
    }
}

fn fetch_following(url: &str, follow: bool) -> Fetched {
    let first = get(url);
    match (&first.status, &first.location) {
        (Some(300..=399), Some(location)) if follow => get(location),
        _ => first,
    }
}

/// One GET of `url`: `scheme://authority/path`, or a bare `/path` with no authority.
fn get(url: &str) -> Fetched {
    let failed = |error: String| Fetched {
        error: Some(error),
        ..Fetched::default()
    };
    let request = OutgoingRequest::new(Fields::new());
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Some(Scheme::Https), rest),
        Some(("http", rest)) => (Some(Scheme::Http), rest),
        Some((other, rest)) => (Some(Scheme::Other(other.into())), rest),
        None => (None, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(0) => (None, rest),
        Some(i) => (Some(&rest[..i]), &rest[i..]),
        None => (Some(rest), "/"),
    };
    if request.set_scheme(scheme.as_ref()).is_err()
        || request.set_authority(authority).is_err()
        || request.set_path_with_query(Some(path)).is_err()
    {
        return failed(format!("the request target {url:?} was refused"));
    }
    let pending = match outgoing_handler::handle(request, None) {
        Ok(pending) => pending,
        Err(e) => return failed(code(&e)),
    };
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return failed(code(&e)),
        _ => return failed("no response".into()),
    };
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let mut body = Vec::new();
    if let Ok(incoming) = response.consume()
        && let Ok(mut stream) = incoming.stream()
    {
        let _ = stream.read_to_end(&mut body);
    }
    Fetched {
        status: Some(response.status()),
        location,
        body: Some(String::from_utf8_lossy(&body).into_owned()),
        error: None,
    }
}

/// The error code's name, e.g. `HttpRequestDenied`.
fn code(e: &ErrorCode) -> String {
    let text = format!("{e:?}");
    let text = text.strip_prefix("ErrorCode::").unwrap_or(&text);
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or(text)
        .to_owned()
}
