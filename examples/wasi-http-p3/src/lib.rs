//! A standard `wasi:http@0.3` service (WASIp3, component-model async) built with only the
//! `wasip3` crate. Its handler is `async`: while one request waits, the same instance
//! takes others.
//!
//! - `GET /sleep?ms=N` waits N milliseconds (default 200) on the monotonic clock, then
//!   answers `{"slept_ms": N, "served": S, "in_flight_max": M}`: `served` counts the
//!   requests this instance has taken, `in_flight_max` the most it held at once. With
//!   `&until=K` it then goes on waiting (10 s at most) until K requests were in flight
//!   at once, which only an instance that takes requests concurrently ever sees.
//! - `POST /echo` streams the request body back chunk by chunk as it arrives.
//! - `GET /panic` traps; `GET /spin` never yields.
//! - anything else: a greeting.

use std::cell::Cell;

use wasip3::clocks::monotonic_clock;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_bindgen::StreamResult;
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(Service);

struct Service;

thread_local! {
    static SERVED: Cell<u32> = const { Cell::new(0) };
    static IN_FLIGHT: Cell<u32> = const { Cell::new(0) };
    static IN_FLIGHT_MAX: Cell<u32> = const { Cell::new(0) };
}

/// Counts a request in flight until dropped.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        SERVED.set(SERVED.get() + 1);
        IN_FLIGHT.set(IN_FLIGHT.get() + 1);
        IN_FLIGHT_MAX.set(IN_FLIGHT_MAX.get().max(IN_FLIGHT.get()));
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.set(IN_FLIGHT.get() - 1);
    }
}

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let _in_flight = InFlight::enter();
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        match path {
            "/sleep" => {
                let ms = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("ms="))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(200)
                    .min(60_000);
                monotonic_clock::wait_for(ms * 1_000_000).await;
                let until = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("until="))
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0);
                for _ in 0..1000 {
                    if IN_FLIGHT_MAX.get() >= until {
                        break;
                    }
                    monotonic_clock::wait_for(10_000_000).await;
                }
                let body = format!(
                    "{{\"slept_ms\":{ms},\"served\":{},\"in_flight_max\":{}}}",
                    SERVED.get(),
                    IN_FLIGHT_MAX.get()
                );
                Ok(respond("application/json", body.into_bytes()))
            }
            "/echo" => Ok(echo(request)),
            "/panic" => panic!("asked to panic"),
            "/spin" => loop {
                std::hint::spin_loop();
            },
            _ => Ok(respond(
                "text/plain",
                b"Hello from a WASIp3 component!\n".to_vec(),
            )),
        }
    }
}

/// A response whose body is `body`, written by a task that outlives `handle`.
fn respond(content_type: &str, body: Vec<u8>) -> Response {
    let headers = Fields::new();
    // A name and value we wrote ourselves are valid.
    let _ = headers.append("content-type", content_type.as_bytes());
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(rx), trailers_rx);
    drop(trailers_tx);
    wasip3::spawn_local(async move {
        let _ = tx.write_all(body).await;
    });
    response
}

/// Streams the request body back: each chunk is written out as soon as it is read.
fn echo(request: Request) -> Response {
    let (done_tx, done_rx) = wit_future::new(|| Ok(()));
    let (mut incoming, _trailers) = Request::consume_body(request, done_rx);
    let (mut outgoing, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(rx), trailers_rx);
    wasip3::spawn_local(async move {
        let mut buffer = Vec::with_capacity(64 * 1024);
        loop {
            let (result, chunk) = incoming.read(buffer).await;
            let mut left = chunk;
            if !left.is_empty() {
                left = outgoing.write_all(left).await;
                // The client went away: what is left was not sent.
                if !left.is_empty() {
                    break;
                }
            }
            if !matches!(result, StreamResult::Complete(_)) {
                break;
            }
            buffer = left;
            buffer.reserve(64 * 1024);
        }
        // Reading the request is over (its result: fine), and so is the response.
        drop(done_tx);
        drop(trailers_tx);
    });
    response
}
