//! The guest SDK of wasmhost: typed HTTP endpoints and callable functions as WebAssembly
//! components.
//!
//! Depend on it as `wasmhost = { package = "wasmhost-sdk", ... }` (the macros' expansions
//! refer to `::wasmhost`), annotate plain functions with [`endpoint`] or [`function`], and
//! build the crate as a `cdylib` for `wasm32-wasip2`: the result is a
//! `wasmhost:guest/endpoint` component that describes itself, serves every endpoint and
//! runs every function. No other code is needed.
//!
//! # Endpoints
//!
//! ```no_run
//! # extern crate wasmhost_sdk as wasmhost;
//! use schemars::JsonSchema;
//! use serde::Serialize;
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Greeting {
//!     message: String,
//! }
//!
//! /// Greets someone.
//! #[wasmhost::endpoint(method = "GET", docs = true)]
//! fn hello(name: Option<String>) -> wasmhost::Json<Greeting> {
//!     let name = name.as_deref().unwrap_or("World");
//!     wasmhost::Json(Greeting { message: format!("Hello, {name}!") })
//! }
//! # fn main() {}
//! ```
//!
//! Attribute keys: `method = "POST"` (default `GET`), `label = "api"`, `docs = true`,
//! `requires_proxy_auth = true`, `custom_domains = ["a.example.com"]`, `timeout = "30s"`
//! (`ms`, `s`, `m`, `h`), `memory = 64` (MiB), `gpu = "any"`,
//! `allowed_outbound_hosts = ["https://api.example.com", "http://127.0.0.1:*"]` (where its
//! outgoing `wasi:http` requests may go, in Spin's form: scheme, host or `*.domain`, port
//! or `*`; nowhere by default, and the host answers anything else with
//! `HTTP-request-denied`), and how instances scale in
//! Modal's names: `max_inputs`, `min_containers`, `max_containers`, `buffer_containers`,
//! `scaledown_window = "60s"` and `isolation = "per-request"` (a fresh instance per
//! request instead of a warm one). The doc comment becomes the summary.
//!
//! Arguments follow FastAPI: a [`Json`] parameter receives the whole JSON body, a
//! [`Request`] parameter the whole request, and every other parameter is taken by name
//! from the query string (`GET`, `DELETE`, `HEAD`) or from the JSON body's fields then
//! the query string (other methods). Query values are read as text, then as JSON
//! (`"5"` → `5`); an absent parameter is built from `null`, so `Option<T>` is optional.
//! Bad input is answered with a 422 listing every error. Results implement
//! [`IntoResponse`]: [`Json`], [`Response`], `String`, `()`, `(u16, T)` and `Result`.
//!
//! # Functions
//!
//! ```no_run
//! # extern crate wasmhost_sdk as wasmhost;
//! /// Squares `x`.
//! #[wasmhost::function(retries = 3, timeout = "30s")]
//! fn square(x: i64) -> i64 {
//!     x * x
//! }
//!
//! #[wasmhost::function(schedule = "cron(0 9 * * *, Europe/Paris)", secrets = ["mail"])]
//! fn morning_report() -> Result<(), String> {
//!     let key = std::env::var("MAIL_KEY").map_err(|e| e.to_string())?;
//! #   let _ = key;
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! A function (Modal's `@app.function`) is called with the JSON input
//! `{"args": [...], "kwargs": {...}}`: positional `args` fill the parameters in declaration
//! order, `kwargs` name them, either may be absent. A parameter given neither way is built
//! from `null`, so `Option<T>` is optional. Parameters are `Deserialize + JsonSchema`; the
//! result is `T: Serialize + JsonSchema` (sent as JSON; `()` is `null`) or, for a return
//! type spelled `Result<..>` (`std`'s, `anyhow::Result<T>`, ...), `Result<T, E: Display>`
//! whose `Err` fails the call with `e.to_string()` as its message. A panic traps; the host
//! records the attempt as failed. Input that does not fit fails the call with
//! [`CallError::InvalidInput`], a JSON list of every error,
//! `[{"type", "loc": ["args", index] | ["kwargs", name], "msg", "input"}]`
//! (a bare object of parameters, `{"x": 1}`, is refused and told to use `kwargs`).
//!
//! Attribute keys (all optional):
//! - `retries = 3`, or `retries(max = 3, backoff = 2.0, initial_delay = "1s",
//!   max_delay = "60s")`: retries of failed or timed-out attempts; the defaults are
//!   Modal's (backoff 2.0, first delay 1 s, at most 60 s).
//! - `timeout = "30s"`: time limit of one attempt; `memory = 64`: memory cap in MiB.
//! - `schedule = "cron(0 * * * *)"`, `"cron(0 9 * * *, Europe/Paris)"` or `"period(5m)"`:
//!   runs of the deployed app; only the shape is checked at compile time, the host
//!   parses the expression when the app is deployed.
//! - `secrets = ["name", ...]`: each secret's keys become environment variables.
//! - `volumes = ["volume:/mount/path", ...]`: volumes mounted as preopened directories,
//!   read and written with `std::fs` under the mount path.
//! - `gpu = "any"` (or an adapter name): the function may use [`gpu`], with the same
//!   limits as an endpoint.
//! - `allowed_outbound_hosts = [...]`: where its outgoing HTTP requests may go, as for
//!   endpoints.
//!
//! - `batched(max_batch_size = 8, wait_ms = 50)` (Modal's `@batched`): the host collects
//!   calls until `max_batch_size` wait or the first has waited `wait_ms`, and runs them as
//!   one call. Each parameter is a `Vec` of what one call passes (`x: Vec<i64>`; a call
//!   still passes `{"args": [3]}`), and the function returns one result per call, in
//!   order: `Vec<T>`, `Vec<Result<T, E>>` (an `Err` fails only its call) or
//!   `Result<Vec<T>, E>` (an `Err` fails the whole batch). A call whose input does not fit
//!   fails alone, and a result list of the wrong length fails every call with a message
//!   saying so.
//!
//!   `#[wasmhost::endpoint(batched(...))]` batches a typed endpoint's requests the same
//!   way: each parameter taken from the query or body is a `Vec` (one element per
//!   request), and the function returns `Vec<R>` with one `R: IntoResponse` per request
//!   (`Vec<Result<Json<T>, (u16, String)>>` answers each with its own status). A request
//!   that does not fit gets its own 422; a wrong number of results answers every request
//!   with a 500 that says so.
//!
//! [`current_call`] says which call and attempt (1-based) a function runs for (the host
//! also sets `WASMHOST_CALL_ID` and `WASMHOST_ATTEMPT` for synchronous functions; calls of
//! an `async` function share an instance, so only `current_call` is right there). A
//! function's name must not
//! be an endpoint's name too: the SDK does not check this, the host refuses such a
//! component when it loads it.
//!
//! A guest calls the functions of its own app through the host with [`functions`]:
//! [`functions::spawn`] (returns a [`functions::FunctionCall`] whose
//! [`get`](functions::FunctionCall::get) waits for the result) and [`functions::call`].
//!
//! [`manifest`], [`handle`] and [`invoke`] are what the component exports; natively they
//! let tests describe the app and call endpoints and functions without a host.
//! Other shapes: [`asgi_app`] (an [`asgi::App`]: routes, middleware, lifespan, streaming,
//! server-sent events, WebSockets), [`wsgi_app`] (a Flask-like [`wsgi::App`]) and [`cls`]
//! (class endpoints whose state lives in a warm instance). [`Request::multipart`] parses
//! uploads and [`Request::param`] typed path parameters.
//!
//! # Async handlers (Modal's `@concurrent`)
//!
#![cfg_attr(
    feature = "async",
    doc = r#"
```no_run
/// Waits without holding the instance: up to 16 requests share one.
#[wasmhost::endpoint(max_inputs = 16)]
async fn slow(ms: u64) -> String {
    wasmhost::sleep(std::time::Duration::from_millis(ms)).await;
    format!("slept {ms} ms")
}
```
"#
)]
//!
//! With the crate's `async` feature, endpoints and functions may be `async fn`s that
//! await WASIp3 I/O (`wasmhost::sleep`, and the `wasip3` crate's clocks, HTTP and sockets).
//! The component then exports component-model-async handlers, and the host calls one
//! instance with up to `max_inputs` requests at once (default 16): while one awaits, the
//! others run. Synchronous handlers in the same app keep working. `async` functions share
//! instances the same way (up to 16 calls each, or the operator's `max_inputs` for the
//! function); [`current_call`] tells their calls apart. Class methods cannot be `async` yet.
//! Without the feature an `async fn` runs to completion on each call, one at a time.
//! Build a crate with the feature on its own: Cargo unifies features across what one
//! command builds, so other guests built alongside would gain async exports too.
//!
//! # Pre-initialisation
//!
//! ```no_run
//! # extern crate wasmhost_sdk as wasmhost;
//! # fn load_table() -> Result<Vec<u32>, String> { Ok(vec![1]) }
//! static TABLE: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
//!
//! /// Runs once, at deploy; every instance starts with the table built.
//! #[wasmhost::init]
//! fn build_table() -> Result<(), String> {
//!     TABLE.set(load_table()?).map_err(|_| "built twice".to_string())
//! }
//! # fn main() {}
//! ```
//!
//! [`init`] functions (Modal's `@enter(snap=True)`) take no arguments and return nothing
//! or `Result<(), E: Display>`. The host runs them once when it loads the component and
//! snapshots the memory they leave (wasmtime-wizer), so instances start initialised and
//! never run them again; an error or panic refuses the component with its message. They
//! run without secrets, volumes or a GPU, and may print; files, sockets or streams they
//! open do not survive into the snapshot. Random seeds drawn during init (e.g. a
//! `HashMap`'s) are shared by every instance of the snapshot.
//!
//! An endpoint or function declared with `gpu = "any"` may run WGSL compute shaders on the
//! host's GPU through [`gpu`] (`gpu::run` for the one-call case).

#![warn(missing_docs)]

// Lets the macro's `::wasmhost::` paths resolve inside this crate's own tests.
extern crate self as wasmhost;

/// Checks that the `apps` feature is on; the app and class macros expand to it.
#[doc(hidden)]
#[cfg(feature = "apps")]
#[macro_export]
macro_rules! __requires_apps {
    ($what:literal) => {};
}

/// Checks that the `apps` feature is on; the app and class macros expand to it.
#[doc(hidden)]
#[cfg(not(feature = "apps"))]
#[macro_export]
macro_rules! __requires_apps {
    ($what:literal) => {
        compile_error!(concat!(
            "`#[wasmhost::",
            $what,
            "]` needs the SDK's `apps` feature (on by default): add `features = [\"apps\"]` to the `wasmhost` dependency"
        ));
    };
}

mod args;
pub mod asgi;
mod batch;
mod cls;
#[cfg(target_family = "wasm")]
mod component;
pub mod functions;
pub mod gpu;
mod http;
mod invoke;
mod json;
pub mod multipart;
mod registry;
mod respond;
mod router;
mod schema;
mod task;
mod wit;
pub mod wsgi;

pub use http::{Headers, Request, Response};
pub use invoke::CallError;
pub use json::Json;
pub use registry::{enter, exit, handle, handle_async, initialize, invoke, invoke_async, manifest};
pub use respond::IntoResponse;
pub use router::Pattern;
pub use schema::BODY_KEY;
pub use task::{CallInfo, as_call, block_on, current_call, sleep};
/// Declares an ASGI-like app: `fn name() -> wasmhost::asgi::App` (see [`asgi`]).
pub use wasmhost_macros::asgi_app;
/// Turns an `impl` block of a `Default` type into class endpoints (Modal's `app.cls`):
/// `#[method(...)]` methods are endpoints sharing one value per instance; `#[enter]` and
/// `#[exit]` methods run once per instance.
pub use wasmhost_macros::cls;
/// Declares a web endpoint (see the crate docs for its keys and arguments).
pub use wasmhost_macros::endpoint;
/// Declares a callable function (see the crate docs for its keys, input and result).
pub use wasmhost_macros::function;
/// Marks pre-initialisation work (Modal's `@enter(snap=True)`): `fn name()` or
/// `fn name() -> Result<(), E>` run once at deploy and baked into a snapshot of the
/// component, so no instance pays for it again (see the crate docs).
pub use wasmhost_macros::init;
/// Declares a WSGI-like app: `fn name() -> wasmhost::wsgi::App` (see [`wsgi`]).
pub use wasmhost_macros::wsgi_app;
pub use wit::types::{
    Batching, EndpointInfo, EndpointKind, FunctionInfo, Manifest, RetryPolicy, Scaling, VolumeMount,
};

/// What the attribute macro's expansion refers to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::args::{Args, FieldError, unprocessable};
    pub use crate::batch::{BatchOutcomes, BatchResponses, batch_inputs, batch_requests};
    pub use crate::cls::ClassCell;
    pub use crate::invoke::{
        Input, ResultOk, invalid_input, output_result, output_schema, output_value,
        rejected as input_rejected,
    };
    pub use crate::registry::{ClassHooks, Endpoint, Function, InitHook, Kind};
    pub use crate::schema::{ArgsSchema, result_schema};
    pub use crate::task::BoxFuture;
    pub use crate::wit::types::{Batching, Scaling};
    pub use inventory;

    /// The response of a call whose arguments could not all be extracted.
    pub fn rejected(finished: Result<crate::Request, crate::Response>) -> crate::Response {
        match finished {
            Err(response) => response,
            Ok(_) => crate::Response::error(500, "argument extraction failed"),
        }
    }
}
