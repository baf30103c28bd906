//! Functions beside a web endpoint, for the host's function tests (issue 5's contract).
//!
//! `square` and `slow` are called, spawned and mapped; `slow_web` outlives the web request
//! cap (303); `flaky`, `sleepy` and `fails` exercise retries, timeouts and failures;
//! `echo_args` shows how `args` and `kwargs` reach the parameters; `chatty`, `boom` and
//! `progress` fill call logs.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};
use wasmhost::Json;

/// Sleeps `seconds` (nothing for a negative or unusable value).
fn sleep(seconds: f64) {
    if let Ok(duration) = Duration::try_from_secs_f64(seconds) {
        std::thread::sleep(duration);
    }
}

/// Squares `x`.
#[wasmhost::function]
fn square(x: i64) -> i64 {
    x.wrapping_mul(x)
}

/// Sleeps `seconds`, then returns them.
#[wasmhost::function]
fn slow(seconds: f64) -> f64 {
    sleep(seconds);
    seconds
}

/// How long `slow_web` slept.
#[derive(Serialize, JsonSchema)]
struct Slept {
    seconds: f64,
}

/// Sleeps `seconds`, then answers `{"seconds": seconds}`.
#[wasmhost::endpoint(method = "GET")]
fn slow_web(seconds: f64) -> Json<Slept> {
    sleep(seconds);
    Json(Slept { seconds })
}

/// Fails on its first two attempts and succeeds on the third (`WASMHOST_ATTEMPT`).
#[wasmhost::function(retries(max = 3, initial_delay = "200ms"))]
fn flaky() -> Result<String, String> {
    let attempt = std::env::var("WASMHOST_ATTEMPT").map_err(|_| "WASMHOST_ATTEMPT is not set")?;
    match attempt.parse::<u32>() {
        Ok(n) if n >= 3 => Ok(format!("succeeded on attempt {n}")),
        Ok(n) => Err(format!("failed on purpose on attempt {n}")),
        Err(_) => Err(format!("WASMHOST_ATTEMPT is not a number: {attempt:?}")),
    }
}

/// Sleeps `seconds` under a 1 s limit, so a longer sleep times out on every attempt.
#[wasmhost::function(timeout = "1s", retries(max = 1, initial_delay = "10ms"))]
fn sleepy(seconds: f64) -> f64 {
    sleep(seconds);
    seconds
}

/// Fails with `message`.
#[wasmhost::function]
fn fails(message: String) -> Result<(), String> {
    Err(message)
}

/// Returns its arguments: `{"a": a, "b": b}`.
#[wasmhost::function]
fn echo_args(a: i64, b: Option<String>) -> Value {
    json!({ "a": a, "b": b })
}

/// Sleeps `seconds` on attempts before `quick_from`, then returns the attempt it ran on
/// (`WASMHOST_ATTEMPT`): the kill -9 tests cut attempts short and see them counted.
#[wasmhost::function(retries(max = 2, initial_delay = "10ms"))]
fn attempt_number(seconds: f64, quick_from: u32) -> Result<u32, String> {
    let attempt = std::env::var("WASMHOST_ATTEMPT").map_err(|_| "WASMHOST_ATTEMPT is not set")?;
    let attempt: u32 = attempt
        .parse()
        .map_err(|_| format!("WASMHOST_ATTEMPT is not a number: {attempt:?}"))?;
    if attempt < quick_from {
        sleep(seconds);
    }
    Ok(attempt)
}

/// Prints `lines` numbered lines to stdout and one to stderr, and the value of `LOG_TOKEN`
/// from the secret `log-secret` (the host must keep it out of the call's log), then
/// returns `lines`.
#[wasmhost::function(secrets = ["log-secret"])]
fn chatty(lines: u32) -> u32 {
    for i in 0..lines {
        println!("chatty line {i}");
    }
    eprintln!("chatty: a line on stderr");
    if let Ok(token) = std::env::var("LOG_TOKEN") {
        println!("chatty: the token is {token}");
    }
    lines
}

/// Prints a line, then panics with `message` (a trap the call's log explains).
#[wasmhost::function]
fn boom(message: String) {
    println!("boom: about to panic");
    panic!("{message}");
}

/// Prints `step <i>` for each of `steps` steps, `seconds` apart (a long call whose log
/// followers see progress), then returns `steps`.
#[wasmhost::function]
fn progress(steps: u32, seconds: f64) -> u32 {
    for i in 0..steps {
        if i > 0 {
            sleep(seconds);
        }
        println!("step {i}");
    }
    steps
}
