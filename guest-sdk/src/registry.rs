//! Endpoints registered by `#[wasmhost::endpoint]`, the manifest they make and dispatch.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::schema::ArgsSchema;
use crate::{Request, Response};

/// One endpoint as the attribute macro registers it.
#[derive(Debug)]
pub struct Endpoint {
    /// `CARGO_PKG_NAME` of the crate that defines it.
    pub app: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// The one HTTP method it accepts, upper-case.
    pub method: &'static str,
    /// A custom label for its URL.
    pub label: Option<&'static str>,
    /// Serve `/openapi.json` and `/docs` for it.
    pub docs: bool,
    /// Callers must send proxy-auth token headers.
    pub requires_proxy_auth: bool,
    /// Host names that route to it besides the generated URL.
    pub custom_domains: &'static [&'static str],
    /// The function's doc comment.
    pub summary: Option<&'static str>,
    /// Per-call time limit in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear-memory cap in MiB.
    pub memory_mib: Option<u32>,
    /// The GPU it needs: `"any"` or an adapter name.
    pub gpu: Option<&'static str>,
    /// Adds the parameters to an argument schema.
    pub args_schema: fn(&mut ArgsSchema),
    /// The result's schema, when the result is JSON.
    pub result_schema: fn() -> Option<Value>,
    /// Extracts the arguments, calls the function and builds the response.
    pub handler: fn(Request) -> Response,
}

inventory::collect!(Endpoint);

/// What a component states about itself (mirrors the WIT `manifest` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The app's name, DNS-safe.
    pub app: String,
    /// Version of this SDK.
    pub sdk_version: String,
    /// The endpoints, sorted by name.
    pub endpoints: Vec<EndpointInfo>,
}

/// One endpoint in the manifest (mirrors the WIT `endpoint-info` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The function's name.
    pub name: String,
    /// The one HTTP method it accepts, upper-case.
    pub method: String,
    /// A custom label for its URL.
    pub label: Option<String>,
    /// Serve `/openapi.json` and `/docs` for it.
    pub docs: bool,
    /// Callers must send proxy-auth token headers.
    pub requires_proxy_auth: bool,
    /// Host names that route to it besides the generated URL.
    pub custom_domains: Vec<String>,
    /// The function's doc comment.
    pub summary: Option<String>,
    /// JSON Schema of the arguments (see [`ArgsSchema`]).
    pub args_schema: String,
    /// JSON Schema of a JSON result.
    pub result_schema: Option<String>,
    /// Per-call time limit in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear-memory cap in MiB.
    pub memory_mib: Option<u32>,
    /// The GPU it needs: `"any"` or an adapter name.
    pub gpu: Option<String>,
}

/// The registered endpoints, sorted by name.
fn endpoints() -> Vec<&'static Endpoint> {
    let mut all: Vec<_> = inventory::iter::<Endpoint>.into_iter().collect();
    all.sort_by_key(|e| e.name);
    all
}

/// The manifest of every registered endpoint, as `describe` returns it.
///
/// The app is the crate name most endpoints come from, with `_` turned into `-`.
pub fn manifest() -> Manifest {
    let endpoints = endpoints();
    let mut apps: BTreeMap<&str, usize> = BTreeMap::new();
    for endpoint in &endpoints {
        *apps.entry(endpoint.app).or_default() += 1;
    }
    let app = apps
        .iter()
        .max_by_key(|&(name, count)| (*count, std::cmp::Reverse(*name)))
        .map_or("", |(name, _)| name);
    Manifest {
        app: app.replace('_', "-").to_ascii_lowercase(),
        sdk_version: env!("CARGO_PKG_VERSION").to_owned(),
        endpoints: endpoints.into_iter().map(info).collect(),
    }
}

/// The manifest entry of one endpoint.
fn info(endpoint: &Endpoint) -> EndpointInfo {
    let mut args = ArgsSchema::new();
    (endpoint.args_schema)(&mut args);
    EndpointInfo {
        name: endpoint.name.to_owned(),
        method: endpoint.method.to_owned(),
        label: endpoint.label.map(str::to_owned),
        docs: endpoint.docs,
        requires_proxy_auth: endpoint.requires_proxy_auth,
        custom_domains: endpoint
            .custom_domains
            .iter()
            .map(|d| (*d).to_owned())
            .collect(),
        summary: endpoint.summary.map(str::to_owned),
        args_schema: args.into_json(),
        result_schema: (endpoint.result_schema)().map(|s| s.to_string()),
        timeout_ms: endpoint.timeout_ms,
        memory_mib: endpoint.memory_mib,
        gpu: endpoint.gpu.map(str::to_owned),
    }
}

/// Calls the endpoint named `endpoint` with `request`, as `handle` does; 404 if unknown.
pub fn handle(endpoint: &str, request: Request) -> Response {
    match inventory::iter::<Endpoint>
        .into_iter()
        .find(|e| e.name == endpoint)
    {
        Some(found) => (found.handler)(request),
        None => Response::error(404, format!("no endpoint named `{endpoint}`")),
    }
}
