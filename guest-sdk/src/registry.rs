//! Endpoints and functions registered by `#[wasmhost::endpoint]` and
//! `#[wasmhost::function]`, the manifest they make and dispatch.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::invoke::CallError;
use crate::schema::ArgsSchema;
use crate::task::BoxFuture;
use crate::wit::types::{
    Batching, EndpointInfo, EndpointKind, FunctionInfo, Manifest, RetryPolicy, Scaling, VolumeMount,
};
use crate::{Request, Response};

/// How an endpoint is served.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A typed function, a fresh instance per call.
    Function,
    /// A method of a class: a warm instance, `enter` once.
    Method,
    /// An ASGI-like app built by this factory (once per instance).
    Asgi(fn() -> crate::asgi::App),
    /// A WSGI-like app built by this factory (once per instance).
    Wsgi(fn() -> crate::wsgi::App),
}

impl Kind {
    /// Its kind in the manifest.
    pub fn wit(&self) -> EndpointKind {
        match self {
            Kind::Function => EndpointKind::Function,
            Kind::Method => EndpointKind::Method,
            Kind::Asgi(_) => EndpointKind::Asgi,
            Kind::Wsgi(_) => EndpointKind::Wsgi,
        }
    }
}

/// Hooks of a class, run once per instance (`#[wasmhost::cls]`).
#[derive(Debug)]
pub struct ClassHooks {
    /// The class's type name.
    pub class: &'static str,
    /// Creates the instance's state and runs its `#[enter]` method.
    pub enter: fn() -> Result<(), String>,
    /// Runs its `#[exit]` method.
    pub exit: fn(),
}

inventory::collect!(ClassHooks);

/// Runs every class's `enter` hook (the `lifecycle.enter` export).
pub fn enter() -> Result<(), String> {
    inventory::iter::<ClassHooks>
        .into_iter()
        .try_for_each(|hooks| (hooks.enter)().map_err(|e| format!("{}: {e}", hooks.class)))
}

/// A `#[wasmhost::init]` function: pre-initialisation work, run once before any call.
#[derive(Debug)]
pub struct InitHook {
    /// The function's name, for the message when it fails.
    pub name: &'static str,
    /// Runs it; an error is reported by the host at deploy.
    pub run: fn() -> Result<(), String>,
}

inventory::collect!(InitHook);

/// Runs every `#[wasmhost::init]` function (the `init.initialize` export), in name order.
///
/// # Panics
///
/// When one fails: the trap carries its message to the host, which refuses the deploy.
pub fn initialize() {
    let mut hooks: Vec<&InitHook> = inventory::iter::<InitHook>.into_iter().collect();
    hooks.sort_by_key(|h| h.name);
    for hook in hooks {
        if let Err(e) = (hook.run)() {
            panic!("init function `{}` failed: {e}", hook.name);
        }
    }
    forget_wasi_handles();
}

/// Makes wasi-libc forget the WASI handles it cached while init ran (the stdout stream
/// after a print, preopened directories): they belong to the instance that ran init and
/// mean nothing in instances of its snapshot ("unknown handle index"). The standard
/// streams are closed and re-registered unopened, so each instance opens its own on
/// first use.
fn forget_wasi_handles() {
    #[cfg(target_family = "wasm")]
    {
        unsafe extern "C" {
            fn close(fd: i32) -> i32;
            fn __wasilibc_init_stdio() -> i32;
            fn __wasilibc_reset_preopens();
        }
        // SAFETY: wasi-libc's own entry points. Closing 0-2 drops their streams;
        // `__wasilibc_init_stdio` puts fresh, lazily opened entries back at the same
        // (lowest free) numbers; the preopen reset only clears libc's table.
        unsafe {
            for fd in 0..3 {
                close(fd);
            }
            __wasilibc_init_stdio();
            __wasilibc_reset_preopens();
        }
    }
}

/// Whether the component has `#[wasmhost::init]` work.
pub fn has_init() -> bool {
    inventory::iter::<InitHook>.into_iter().next().is_some()
}

/// Runs every class's `exit` hook (the `lifecycle.exit` export).
pub fn exit() {
    inventory::iter::<ClassHooks>
        .into_iter()
        .for_each(|hooks| (hooks.exit)());
}

/// The endpoint registered under `name`.
pub fn find(name: &str) -> Option<&'static Endpoint> {
    inventory::iter::<Endpoint>
        .into_iter()
        .find(|e| e.name == name)
}

/// One endpoint as the attribute macros register it.
#[derive(Debug)]
pub struct Endpoint {
    /// `CARGO_PKG_NAME` of the crate that defines it.
    pub app: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// How it is served.
    pub kind: Kind,
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
    /// Where it may send outgoing HTTP requests (`scheme://host[:port]`).
    pub allowed_outbound_hosts: &'static [&'static str],
    /// How its instances scale.
    pub scaling: Scaling,
    /// Adds the parameters to an argument schema.
    pub args_schema: fn(&mut ArgsSchema),
    /// The result's schema, when the result is JSON.
    pub result_schema: fn() -> Option<Value>,
    /// Extracts the arguments, calls the function and builds the response.
    pub handler: fn(Request) -> Response,
    /// The same for an `async fn`, which may await I/O while other inputs run
    /// (`handler` then blocks on it, for hosts that call the synchronous export).
    pub async_handler: Option<fn(Request) -> BoxFuture<Response>>,
    /// Dynamic batching: the host sends one request whose body is `{"batch": [...]}`.
    pub batching: Option<Batching>,
}

inventory::collect!(Endpoint);

/// One function as the attribute macro registers it.
#[derive(Debug)]
pub struct Function {
    /// `CARGO_PKG_NAME` of the crate that defines it.
    pub app: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// The function's doc comment.
    pub summary: Option<&'static str>,
    /// Parameter names in declaration order.
    pub params: &'static [&'static str],
    /// Retries of failed or timed-out attempts.
    pub retries: Option<RetryPolicy>,
    /// Time limit of one attempt in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear-memory cap in MiB.
    pub memory_mib: Option<u32>,
    /// `cron(...)` or `period(...)`.
    pub schedule: Option<&'static str>,
    /// Secrets whose keys become environment variables.
    pub secrets: &'static [&'static str],
    /// `(volume, mount path)` pairs.
    pub volumes: &'static [(&'static str, &'static str)],
    /// The GPU it needs: `"any"` or an adapter name.
    pub gpu: Option<&'static str>,
    /// Where it may send outgoing HTTP requests (`scheme://host[:port]`).
    pub allowed_outbound_hosts: &'static [&'static str],
    /// Adds the parameters to an argument schema.
    pub args_schema: fn(&mut ArgsSchema),
    /// The result's schema.
    pub result_schema: fn() -> Option<Value>,
    /// Reads the input JSON, calls the function and returns its result as JSON.
    pub handler: fn(&str) -> Result<String, CallError>,
    /// The same for an `async fn` (`handler` then blocks on it).
    pub async_handler: Option<AsyncCall>,
    /// Dynamic batching: the host sends `{"batch": [input, ...]}`.
    pub batching: Option<Batching>,
}

/// An `async fn` function's handler: the input JSON in, its result as JSON out.
pub type AsyncCall = fn(String) -> BoxFuture<Result<String, CallError>>;

inventory::collect!(Function);

impl RetryPolicy {
    /// `max_retries` with Modal's defaults: backoff 2.0, first delay 1 s, at most 60 s.
    pub const fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            backoff_coefficient: 2.0,
            initial_delay_ms: 1_000,
            max_delay_ms: 60_000,
        }
    }
}

/// The registered endpoints, sorted by name.
fn endpoints() -> Vec<&'static Endpoint> {
    let mut all: Vec<_> = inventory::iter::<Endpoint>.into_iter().collect();
    all.sort_by_key(|e| e.name);
    all
}

/// The registered functions, sorted by name.
fn functions() -> Vec<&'static Function> {
    let mut all: Vec<_> = inventory::iter::<Function>.into_iter().collect();
    all.sort_by_key(|f| f.name);
    all
}

/// The manifest of every registered endpoint and function, as `describe` returns it.
///
/// The app is the crate name most of them come from, with `_` turned into `-`. Names are
/// not checked here: the host refuses a function named like an endpoint (or two of either
/// with one name).
pub fn manifest() -> Manifest {
    let endpoints = endpoints();
    let functions = functions();
    let mut apps: BTreeMap<&str, usize> = BTreeMap::new();
    let crates = endpoints.iter().map(|e| e.app);
    for app in crates.chain(functions.iter().map(|f| f.app)) {
        *apps.entry(app).or_default() += 1;
    }
    let app = apps
        .iter()
        .max_by_key(|&(name, count)| (*count, std::cmp::Reverse(*name)))
        .map_or("", |(name, _)| name);
    Manifest {
        app: app.replace('_', "-").to_ascii_lowercase(),
        sdk_version: env!("CARGO_PKG_VERSION").to_owned(),
        endpoints: endpoints.into_iter().map(info).collect(),
        functions: functions.into_iter().map(function_info).collect(),
        pre_init: has_init(),
    }
}

/// The manifest entry of one endpoint.
fn info(endpoint: &Endpoint) -> EndpointInfo {
    let mut args = ArgsSchema::new();
    (endpoint.args_schema)(&mut args);
    EndpointInfo {
        name: endpoint.name.to_owned(),
        kind: endpoint.kind.wit(),
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
        allowed_outbound_hosts: endpoint
            .allowed_outbound_hosts
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
        scaling: endpoint.scaling,
        batching: endpoint.batching,
    }
}

/// Calls the endpoint named `endpoint` with `request`, as `handle` does; 404 if unknown.
pub fn handle(endpoint: &str, request: Request) -> Response {
    match find(endpoint) {
        Some(found) => (found.handler)(request),
        None => Response::error(404, format!("no endpoint named `{endpoint}`")),
    }
}

/// Like [`handle`], awaiting an `async fn` endpoint (the async export).
pub async fn handle_async(endpoint: &str, request: Request) -> Response {
    match find(endpoint) {
        Some(Endpoint {
            async_handler: Some(handler),
            ..
        }) => handler(request).await,
        Some(found) => (found.handler)(request),
        None => Response::error(404, format!("no endpoint named `{endpoint}`")),
    }
}

/// The manifest entry of one function.
fn function_info(function: &Function) -> FunctionInfo {
    let mut args = ArgsSchema::new();
    (function.args_schema)(&mut args);
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    FunctionInfo {
        name: function.name.to_owned(),
        summary: function.summary.map(str::to_owned),
        args_schema: args.into_json(),
        params: strings(function.params),
        result_schema: (function.result_schema)().map(|s| s.to_string()),
        retries: function.retries,
        timeout_ms: function.timeout_ms,
        memory_mib: function.memory_mib,
        schedule: function.schedule.map(str::to_owned),
        secrets: strings(function.secrets),
        volumes: function
            .volumes
            .iter()
            .map(|(volume, path)| VolumeMount {
                volume: (*volume).to_owned(),
                path: (*path).to_owned(),
            })
            .collect(),
        gpu: function.gpu.map(str::to_owned),
        allowed_outbound_hosts: strings(function.allowed_outbound_hosts),
        batching: function.batching,
    }
}

/// Calls the function named `name` with `input` (`{"args": [...], "kwargs": {...}}`), as
/// the `function-handler` export does; returns its result as JSON.
///
/// An unknown name is [`CallError::Failed`]. A panic in the function is not caught: in a
/// component it traps and the host reports the attempt as failed.
pub fn invoke(name: &str, input: &str) -> Result<String, CallError> {
    match find_function(name) {
        Some(found) => (found.handler)(input),
        None => Err(CallError::Failed(format!("no function named `{name}`"))),
    }
}

/// Like [`invoke`], awaiting an `async fn` function (the async export).
pub async fn invoke_async(name: &str, input: String) -> Result<String, CallError> {
    match find_function(name) {
        Some(Function {
            async_handler: Some(handler),
            ..
        }) => handler(input).await,
        Some(found) => (found.handler)(&input),
        None => Err(CallError::Failed(format!("no function named `{name}`"))),
    }
}

fn find_function(name: &str) -> Option<&'static Function> {
    inventory::iter::<Function>
        .into_iter()
        .find(|f| f.name == name)
}
