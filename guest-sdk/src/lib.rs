//! The guest SDK of wasmhost: typed HTTP endpoints as WebAssembly components.
//!
//! Annotate plain functions with [`endpoint`]; build the crate as a `cdylib` for
//! `wasm32-wasip2` and the result is a `wasmhost:guest/endpoint` component that
//! describes itself and serves every endpoint. No other code is needed.
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
//! Arguments follow FastAPI: a [`Json`] parameter receives the whole JSON body, a
//! [`Request`] parameter the whole request, and every other parameter is taken by name
//! from the query string (`GET`, `DELETE`, `HEAD`) or from the JSON body's fields then
//! the query string (other methods). Bad input is answered with a 422 listing every
//! error. Results implement [`IntoResponse`].
//!
//! An endpoint declared with `gpu = "any"` may run WGSL compute shaders on the host's GPU
//! through [`gpu`] (`gpu::run` for the one-call case).

// Lets the macro's `::wasmhost::` paths resolve inside this crate's own tests.
extern crate self as wasmhost;

mod args;
#[cfg(target_family = "wasm")]
mod component;
pub mod gpu;
mod http;
mod json;
mod registry;
mod respond;
mod schema;

pub use http::{Headers, Request, Response};
pub use json::Json;
pub use registry::{EndpointInfo, Manifest, handle, manifest};
pub use respond::IntoResponse;
pub use schema::BODY_KEY;
/// Declares a web endpoint; see the crate docs for its arguments and attribute keys.
pub use wasmhost_macros::endpoint;

/// What the attribute macro's expansion refers to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::args::{Args, FieldError, unprocessable};
    pub use crate::registry::Endpoint;
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
