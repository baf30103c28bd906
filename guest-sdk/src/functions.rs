//! Calls from inside a guest to other functions of the same app, through the host
//! (Modal's `.spawn()`, `.remote()` and `FunctionCall`).
//!
//! ```no_run
//! # extern crate wasmhost_sdk as wasmhost;
//! # fn main() -> Result<(), wasmhost::functions::Error> {
//! use std::time::Duration;
//! use wasmhost::functions::{self, FunctionCall};
//!
//! let call = functions::spawn("long_job", (21,))?;            // positional: a JSON array
//! let same = functions::spawn("long_job", serde_json::json!({"n": 21}))?; // by name: an object
//! let id = call.id().to_owned();
//! // ... later, maybe in another request:
//! match FunctionCall::from_id(id).get::<i64>(Duration::from_millis(100))? {
//!     Some(result) => { /* done */ }
//!     None => { /* still pending */ }
//! }
//! let n: i64 = functions::call("long_job", [21])?;         // spawn, then wait for it
//! # let _ = (same, n);
//! # Ok(())
//! # }
//! ```
//!
//! Natively (outside a component) every call returns [`Error::NotInGuest`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Why a call from the guest gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not running inside a wasmhost guest (a native build or test).
    NotInGuest,
    /// The arguments do not serialise to a JSON array (positional) or object (by name).
    Args(String),
    /// The host refused the request: an unknown function or call id, for example.
    Host(String),
    /// The call failed, after its retries: the function's error message or the host's
    /// account of a trap or timeout.
    Failed(String),
    /// The result does not deserialise into the type asked for.
    Result(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInGuest => f.write_str("function calls work only inside a wasmhost guest"),
            Self::Args(detail) => write!(
                f,
                "the arguments must serialise to a JSON array (positional) or object \
                 (by name): {detail}"
            ),
            Self::Host(message) => write!(f, "the host refused the call: {message}"),
            Self::Failed(message) => write!(f, "the call failed: {message}"),
            Self::Result(detail) => {
                write!(f, "the result does not have the expected type: {detail}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// A spawned call of a function (Modal's `FunctionCall`), known by its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionCall {
    id: String,
}

/// How long [`call`] waits in one request to the host before asking again.
const WAIT: Duration = Duration::from_secs(60);

impl FunctionCall {
    /// The call with this id, e.g. one returned to a client earlier.
    pub fn from_id(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }

    /// The call's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits at most `timeout` for the call to finish: `Ok(None)` while it is still
    /// pending, its result when it succeeded, [`Error::Failed`] when it failed.
    ///
    /// A zero `timeout` only looks. The result can be fetched again later.
    pub fn get<T: DeserializeOwned>(&self, timeout: Duration) -> Result<Option<T>, Error> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        match host::poll(&self.id, timeout_ms)? {
            CallState::Pending => Ok(None),
            CallState::Success(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|err| Error::Result(err.to_string())),
            CallState::Failure(message) => Err(Error::Failed(message)),
        }
    }
}

/// Spawns the function `name` of this app and returns at once (Modal's `.spawn()`).
///
/// `args` is either positional, serialising to a JSON array (a tuple, array or `Vec`:
/// `(21,)`, `[21]`), or by name, serialising to a JSON object (a map, a struct,
/// `json!({"n": 21})`); `()` passes no arguments. The call is queued by the host and runs
/// with the function's retries and timeout even if this guest finishes first.
pub fn spawn(name: &str, args: impl Serialize) -> Result<FunctionCall, Error> {
    let input = input(args)?;
    host::spawn(name, &input).map(FunctionCall::from_id)
}

/// Calls the function `name` of this app and waits for its result (Modal's `.remote()`),
/// with no time limit of its own: this guest's own timeout still applies.
///
/// `args` is as for [`spawn`].
pub fn call<T: DeserializeOwned>(name: &str, args: impl Serialize) -> Result<T, Error> {
    let call = spawn(name, args)?;
    loop {
        if let Some(result) = call.get(WAIT)? {
            return Ok(result);
        }
    }
}

/// The input JSON `{"args": [...]}` or `{"kwargs": {...}}` for `args`.
fn input(args: impl Serialize) -> Result<String, Error> {
    let envelope = match serde_json::to_value(args) {
        Ok(Value::Array(args)) => json!({ "args": args }),
        Ok(Value::Object(kwargs)) => json!({ "kwargs": kwargs }),
        Ok(Value::Null) => json!({}),
        Ok(other) => return Err(Error::Args(format!("got {other}"))),
        Err(err) => return Err(Error::Args(err.to_string())),
    };
    Ok(envelope.to_string())
}

/// The state of a spawned call (mirrors the WIT `call-state` variant).
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
pub(crate) enum CallState {
    Pending,
    Success(String),
    Failure(String),
}

/// The host's `spawn` and `poll`.
#[cfg(target_family = "wasm")]
mod host {
    use super::{CallState, Error};

    pub fn spawn(name: &str, input: &str) -> Result<String, Error> {
        crate::component::spawn(name, input).map_err(Error::Host)
    }

    pub fn poll(call_id: &str, timeout_ms: u64) -> Result<CallState, Error> {
        crate::component::poll(call_id, timeout_ms).map_err(Error::Host)
    }
}

/// No host natively.
#[cfg(not(target_family = "wasm"))]
mod host {
    use super::{CallState, Error};

    pub fn spawn(_name: &str, _input: &str) -> Result<String, Error> {
        Err(Error::NotInGuest)
    }

    pub fn poll(_call_id: &str, _timeout_ms: u64) -> Result<CallState, Error> {
        Err(Error::NotInGuest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Named {
        n: i64,
    }

    #[test]
    fn inputs() {
        assert_eq!(input((21,)).as_deref(), Ok(r#"{"args":[21]}"#));
        assert_eq!(input([1, 2]).as_deref(), Ok(r#"{"args":[1,2]}"#));
        assert_eq!(input(vec!["a"]).as_deref(), Ok(r#"{"args":["a"]}"#));
        assert_eq!(input(()).as_deref(), Ok("{}"));
        assert_eq!(
            input(Named { n: 3 }).as_deref(),
            Ok(r#"{"kwargs":{"n":3}}"#)
        );
        let map = BTreeMap::from([("a", 1)]);
        assert_eq!(input(map).as_deref(), Ok(r#"{"kwargs":{"a":1}}"#));
        assert_eq!(input(5), Err(Error::Args("got 5".into())));
    }

    #[test]
    fn native_calls_need_a_guest() {
        assert_eq!(spawn("f", (1,)), Err(Error::NotInGuest));
        assert_eq!(call::<i64>("f", ()), Err(Error::NotInGuest));
        let call = FunctionCall::from_id("fc-1");
        assert_eq!(call.id(), "fc-1");
        assert_eq!(call.get::<i64>(Duration::ZERO), Err(Error::NotInGuest));
        assert_eq!(
            Error::NotInGuest.to_string(),
            "function calls work only inside a wasmhost guest"
        );
        assert!(matches!(spawn("f", 1), Err(Error::Args(_))));
    }
}
