//! The guest SDK of wasmhost: typed HTTP endpoints as WebAssembly components.
//!
//! Depend on it as `wasmhost = { package = "wasmhost-sdk", ... }` (the macro's expansion
//! refers to `::wasmhost`), annotate plain functions with [`endpoint`], and build the crate
//! as a `cdylib` for `wasm32-wasip2`: the result is a `wasmhost:guest/endpoint` component
//! that describes itself and serves every endpoint. No other code is needed.
//!
//! ```ignore
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
//! ```
//!
//! Attribute keys: `method = "POST"` (default `GET`), `label = "api"`, `docs = true`,
//! `requires_proxy_auth = true`, `custom_domains = ["a.example.com"]`, `timeout = "30s"`
//! (`ms`, `s`, `m`, `h`) and `memory = 64` (MiB). The doc comment becomes the summary.
//!
//! Arguments follow FastAPI: a [`Json`] parameter receives the whole JSON body, a
//! [`Request`] parameter the whole request, and every other parameter is taken by name
//! from the query string (`GET`, `DELETE`, `HEAD`) or from the JSON body's fields then
//! the query string (other methods). Query values are read as text, then as JSON
//! (`"5"` → `5`); an absent parameter is built from `null`, so `Option<T>` is optional.
//! Bad input is answered with a 422 listing every error. Results implement
//! [`IntoResponse`]: [`Json`], [`Response`], `String`, `()`, `(u16, T)` and `Result`.
//!
//! Other shapes: [`asgi_app`] (an [`asgi::App`]: routes, middleware, lifespan, streaming,
//! server-sent events, WebSockets), [`wsgi_app`] (a Flask-like [`wsgi::App`]) and [`cls`]
//! (class endpoints whose state lives in a warm instance). [`Request::multipart`] parses
//! uploads and [`Request::param`] typed path parameters.
//!
//! [`manifest`] and [`handle`] are what the component exports; natively they let tests
//! call endpoints without a host.

mod args;
pub mod asgi;
mod cls;
#[cfg(target_family = "wasm")]
mod component;
mod http;
mod json;
pub mod multipart;
mod registry;
mod respond;
mod router;
mod schema;
pub mod wsgi;

pub use http::{Headers, Request, Response};
pub use json::Json;
pub use registry::{EndpointInfo, Manifest, enter, exit, handle, manifest};
pub use respond::IntoResponse;
pub use router::Pattern;
pub use schema::BODY_KEY;
/// Declares an ASGI-like app: `fn name() -> wasmhost::asgi::App` (see [`asgi`]).
pub use wasmhost_macros::asgi_app;
/// Turns an `impl` block of a `Default` type into class endpoints (Modal's `app.cls`):
/// `#[method(...)]` methods are endpoints sharing one value per instance; `#[enter]` and
/// `#[exit]` methods run once per instance.
pub use wasmhost_macros::cls;
/// Declares a web endpoint (see the crate docs for its keys and arguments).
pub use wasmhost_macros::endpoint;
/// Declares a WSGI-like app: `fn name() -> wasmhost::wsgi::App` (see [`wsgi`]).
pub use wasmhost_macros::wsgi_app;

/// What the attribute macro's expansion refers to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::args::{Args, FieldError, unprocessable};
    pub use crate::cls::ClassCell;
    pub use crate::registry::{ClassHooks, Endpoint, Kind};
    pub use crate::schema::{ArgsSchema, result_schema};
    pub use inventory;

    /// The response of a call whose arguments could not all be extracted.
    pub fn rejected(finished: Result<crate::Request, crate::Response>) -> crate::Response {
        match finished {
            Err(response) => response,
            Ok(_) => crate::Response::error(500, "argument extraction failed"),
        }
    }
}
