//! Modal's `@concurrent` and `@batched` with the Rust SDK.
//!
//! - `GET /?ms=N` (endpoint `sleepy`, an `async fn`): waits N milliseconds (default 200)
//!   on the WASIp3 clock without holding the instance, then answers
//!   `{"slept_ms", "served", "in_flight_max"}`: how many requests this instance has taken
//!   and the most it held at once. With `&until=K` it then goes on waiting (10 s at most)
//!   until K requests were in flight at once, which only an instance that takes requests
//!   concurrently ever sees. Up to 16 requests share an instance (`max_inputs`).
//! - `GET` on endpoint `hello`: a synchronous handler in the same app, served as before.
//! - function `nap(ms)`: an `async fn` that awaits the clock, then returns `ms`.
//! - function `whoami(ms)`: an `async fn` that sleeps, then returns its call id and
//!   attempt (`wasmhost::current_call`) and the most calls its instance held at once; up
//!   to 16 calls share an instance.
//! - function `double(x)`: batched (at most 8 calls, waiting at most 100 ms for them);
//!   each call gets `{"value": 2x, "batch": <calls in its batch>}`, and a negative `x`
//!   fails only its own call.
//! - `GET /?x=N` on endpoint `triple`: a batched web endpoint (at most 8 requests,
//!   waiting at most 100 ms); each request gets `{"value": 3N, "batch": <requests in its
//!   batch>}`, a negative `x` a 400 of its own, and a request without a number its own 422.
//! - `GET /?x=N` on endpoint `miscount`: a batched endpoint that drops the last result of
//!   each batch, to show what its callers get (a 500 that says so).

use std::cell::Cell;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

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

/// What `sleepy` saw.
#[derive(Serialize, JsonSchema)]
struct Slept {
    slept_ms: u64,
    served: u32,
    in_flight_max: u32,
}

/// Sleeps without holding the instance: other requests run meanwhile.
#[wasmhost::endpoint(max_inputs = 16)]
async fn sleepy(ms: Option<u64>, until: Option<u32>) -> wasmhost::Json<Slept> {
    let _in_flight = InFlight::enter();
    let ms = ms.unwrap_or(200).min(60_000);
    wasmhost::sleep(Duration::from_millis(ms)).await;
    for _ in 0..1000 {
        if IN_FLIGHT_MAX.get() >= until.unwrap_or(0) {
            break;
        }
        wasmhost::sleep(Duration::from_millis(10)).await;
    }
    wasmhost::Json(Slept {
        slept_ms: ms,
        served: SERVED.get(),
        in_flight_max: IN_FLIGHT_MAX.get(),
    })
}

/// A synchronous handler next to the async one.
#[wasmhost::endpoint]
fn hello(name: Option<String>) -> String {
    format!("Hello, {}!", name.as_deref().unwrap_or("World"))
}

/// Awaits the clock, then returns how long it napped.
#[wasmhost::function]
async fn nap(ms: u64) -> u64 {
    wasmhost::sleep(Duration::from_millis(ms.min(60_000))).await;
    ms
}

/// Who a call of `whoami` was, and what its instance saw.
#[derive(Serialize, JsonSchema)]
struct Identity {
    call_id: Option<String>,
    attempt: Option<u32>,
    /// The most calls of `whoami` its instance held at once so far.
    in_flight_max: u32,
}

/// Sleeps `ms` without holding the instance, then says which call it was (its id and
/// attempt, read after the await, while other calls ran in the same instance).
#[wasmhost::function]
async fn whoami(ms: u64) -> Identity {
    let _in_flight = InFlight::enter();
    wasmhost::sleep(Duration::from_millis(ms.min(60_000))).await;
    let call = wasmhost::current_call();
    Identity {
        call_id: call.as_ref().map(|c| c.call_id.clone()),
        attempt: call.map(|c| c.attempt),
        in_flight_max: IN_FLIGHT_MAX.get(),
    }
}

/// One call's result of `double`.
#[derive(Serialize, JsonSchema)]
struct Doubled {
    value: i64,
    /// How many calls the batch that computed it held.
    batch: usize,
}

/// Doubles each call's `x`, in batches; a negative `x` fails its own call only.
#[wasmhost::function(batched(max_batch_size = 8, wait_ms = 100))]
fn double(x: Vec<i64>) -> Vec<Result<Doubled, String>> {
    let batch = x.len();
    x.into_iter()
        .map(|x| match x {
            x if x < 0 => Err(format!("{x} is negative")),
            x => Ok(Doubled {
                value: x * 2,
                batch,
            }),
        })
        .collect()
}

/// Triples each request's `x`, in batches; a negative `x` gets its own 400.
#[wasmhost::endpoint(batched(max_batch_size = 8, wait_ms = 100))]
fn triple(x: Vec<i64>) -> Vec<Result<wasmhost::Json<Doubled>, (u16, String)>> {
    let batch = x.len();
    x.into_iter()
        .map(|x| match x {
            x if x < 0 => Err((400, format!("{x} is negative"))),
            x => Ok(wasmhost::Json(Doubled {
                value: x * 3,
                batch,
            })),
        })
        .collect()
}

/// Returns one result too few for every batch: a bug the host reports to each caller.
#[wasmhost::endpoint(batched(max_batch_size = 4, wait_ms = 10))]
fn miscount(x: Vec<i64>) -> Vec<String> {
    x.iter().skip(1).map(ToString::to_string).collect()
}
