//! The app manifest: what a component states through `describe` (or what the host
//! assumes for one that does not), as plain serialisable data. A leaf: the engine
//! decodes it from the guest (`engine/manifest.rs`), the store keeps it, every layer
//! reads it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an app consists of, as its component describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppManifest {
    /// DNS-safe app name.
    pub app: String,
    /// Version of the guest SDK that produced the component.
    pub sdk_version: String,
    /// Its web endpoints.
    pub endpoints: Vec<EndpointSpec>,
    /// Its callable functions.
    #[serde(default)]
    pub functions: Vec<FunctionSpec>,
    /// It has `#[wasmhost::init]` work, run once at deploy and served from a snapshot.
    #[serde(default)]
    pub pre_init: bool,
}

impl AppManifest {
    /// The callable function named `name`.
    pub fn function(&self, name: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.name == name)
    }
}

/// How failed attempts are retried (Modal's `modal.Retries`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// Growth factor of the delay.
    pub backoff_coefficient: f64,
    /// Delay before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    /// Upper bound of any delay.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = self
            .backoff_coefficient
            .powi(retry.saturating_sub(1).min(64) as i32);
        let secs = (self.initial_delay.as_secs_f64() * factor).min(self.max_delay.as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_delay)
    }
}

/// A volume mounted into a function's sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeMount {
    /// Volume name.
    pub volume: String,
    /// Absolute path inside the guest.
    pub path: String,
}

/// One callable function of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionSpec {
    /// Name, unique within the app.
    pub name: String,
    /// Doc comment.
    pub summary: Option<String>,
    /// JSON Schema of the arguments.
    pub args_schema: Value,
    /// Parameter names in order (positional `args` fill them).
    pub params: Vec<String>,
    /// JSON Schema of the result.
    pub result_schema: Option<Value>,
    /// Retry policy.
    pub retries: Option<RetryPolicy>,
    /// Time limit of one attempt.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Memory cap in MiB.
    pub memory_mib: Option<u32>,
    /// `cron(...)` or `period(...)`, checked by the scheduler at deploy.
    pub schedule: Option<String>,
    /// Secrets given to it as environment variables.
    pub secrets: Vec<String>,
    /// Volumes mounted into it.
    pub volumes: Vec<VolumeMount>,
    /// The GPU it needs: `"any"` or a name matched against the adapter's.
    #[serde(default)]
    pub gpu: Option<String>,
    /// Where its outgoing `wasi:http` requests may go (Spin's `scheme://host[:port]`).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Dynamic batching (Modal's `@batched`): calls are collected into one guest call.
    #[serde(default)]
    pub batching: Option<Batching>,
}

/// How calls of a batched function are collected into one guest call.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Batching {
    /// Calls in one batch at most.
    pub max_batch_size: usize,
    /// How long the first call of a batch waits for others.
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
}

/// Which shape serves an endpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// A typed function (`fastapi_endpoint`), a fresh instance per request.
    Function,
    /// A method of a class (`app.cls`), on a warm instance whose `enter` ran once.
    Method,
    /// An ASGI-like app: any path and method, streaming, WebSockets.
    Asgi,
    /// A WSGI-like app: any path and method.
    Wsgi,
    /// A standard `wasi:http/incoming-handler` component.
    Proxy,
    /// A standard WASIp3 `wasi:http/handler` service: one instance takes several
    /// requests at once.
    Service,
    /// A `wasi:cli` command that listens on a port (Modal's `web_server`).
    WebServer,
}

impl EndpointKind {
    /// True when the app routes every path and method itself.
    pub fn routes_itself(self) -> bool {
        matches!(
            self,
            Self::Asgi | Self::Wsgi | Self::Proxy | Self::Service | Self::WebServer
        )
    }
}

/// One web endpoint of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointSpec {
    /// Function name, unique within the app.
    pub name: String,
    /// Which shape serves it.
    pub kind: EndpointKind,
    /// The HTTP method it accepts (`*` for shapes that route themselves).
    pub method: String,
    /// Custom URL label.
    pub label: Option<String>,
    /// Serve `/docs` and `/openapi.json`.
    pub docs: bool,
    /// Require proxy-auth headers.
    pub requires_proxy_auth: bool,
    /// Extra host names routed to it.
    pub custom_domains: Vec<String>,
    /// Doc comment.
    pub summary: Option<String>,
    /// JSON Schema of the arguments.
    pub args_schema: Value,
    /// JSON Schema of the result, when JSON.
    pub result_schema: Option<Value>,
    /// Per-call time limit.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Memory cap in MiB.
    pub memory_mib: Option<u32>,
    /// The GPU it needs: `"any"` or a name matched against the adapter's.
    #[serde(default)]
    pub gpu: Option<String>,
    /// Where its outgoing `wasi:http` requests may go (Spin's `scheme://host[:port]`).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// How its instances scale; the host's flags fill what is absent.
    #[serde(default)]
    pub scaling: Scaling,
    /// Dynamic batching (Modal's `@batched`): requests are collected into one guest call.
    #[serde(default)]
    pub batching: Option<Batching>,
}

/// How an endpoint's instances scale (Modal's names).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Scaling {
    /// Calls one instance takes at once.
    pub max_inputs: Option<u32>,
    /// Instances kept warm even without traffic.
    pub min_containers: Option<u32>,
    /// Instances at most; with `max_inputs` it bounds the calls in flight.
    pub max_containers: Option<u32>,
    /// Extra idle instances kept ready while the endpoint takes traffic.
    #[serde(default)]
    pub buffer_containers: Option<u32>,
    /// Idle time after which a warm instance is retired.
    #[serde(with = "humantime_serde")]
    pub scaledown_window: Option<Duration>,
    /// A fresh instance for every request.
    pub per_request: bool,
    /// Warm instances reused although the shape does not promise it is safe: a plain
    /// `wasi:http` component that declares reuse, or an operator's override.
    #[serde(default)]
    pub reuse: bool,
}

/// Scaling settings an operator sets for one function in the server's config file
/// (`[functions."<app>.<function>"]`), over what the guest's attributes say.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScalingOverride {
    /// Calls one instance takes at once.
    pub max_inputs: Option<u32>,
    /// Instances kept warm even without traffic.
    pub min_containers: Option<u32>,
    /// Instances at most.
    pub max_containers: Option<u32>,
    /// Extra idle instances kept ready while it takes traffic.
    pub buffer_containers: Option<u32>,
    /// Idle time after which a warm instance is retired.
    #[serde(default, with = "humantime_serde")]
    pub scaledown_window: Option<Duration>,
    /// `"reuse"` or `"per-request"`.
    pub isolation: Option<IsolationSetting>,
    /// Replaces the function's `allowed_outbound_hosts` (the only way to grant a plain
    /// `wasi:http` component outbound access on a server).
    pub allowed_outbound_hosts: Option<Vec<String>>,
}

/// Whether warm instances are reused.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationSetting {
    /// Warm instances serve request after request.
    Reuse,
    /// A fresh instance for every request.
    PerRequest,
}

impl ScalingOverride {
    /// Sets every field this override names.
    pub fn apply(&self, scaling: &mut Scaling) {
        let pick = |over: Option<u32>, own: Option<u32>| over.or(own);
        scaling.max_inputs = pick(self.max_inputs, scaling.max_inputs);
        scaling.min_containers = pick(self.min_containers, scaling.min_containers);
        scaling.max_containers = pick(self.max_containers, scaling.max_containers);
        scaling.buffer_containers = pick(self.buffer_containers, scaling.buffer_containers);
        scaling.scaledown_window = self.scaledown_window.or(scaling.scaledown_window);
        if let Some(isolation) = self.isolation {
            scaling.per_request = isolation == IsolationSetting::PerRequest;
            scaling.reuse = isolation == IsolationSetting::Reuse;
        }
    }
}

impl AppManifest {
    /// Names a component without `describe` (whose one endpoint was named after its file)
    /// after the app it is deployed as, so its URL and the operator's overrides
    /// (`<app>.<app>`) do not depend on a file name.
    pub fn name_plain_component(&mut self, app: &str) {
        // Only synthesised manifests have these kinds: `describe` cannot state them.
        let plain = |e: &EndpointSpec| {
            matches!(
                e.kind,
                EndpointKind::Proxy | EndpointKind::Service | EndpointKind::WebServer
            )
        };
        if !self.endpoints.iter().all(plain) {
            return;
        }
        self.app = app.to_owned();
        for spec in &mut self.endpoints {
            spec.name = app.to_owned();
        }
    }

    /// Applies the operator's overrides for this app (keys `<app>.<function>`), with the
    /// app named `app` as deployed.
    pub fn apply_overrides(
        &mut self,
        app: &str,
        overrides: &std::collections::BTreeMap<String, ScalingOverride>,
    ) {
        for spec in &mut self.endpoints {
            if let Some(o) = overrides.get(&format!("{app}.{}", spec.name)) {
                o.apply(&mut spec.scaling);
                if let Some(hosts) = &o.allowed_outbound_hosts {
                    spec.allowed_outbound_hosts = hosts.clone();
                }
            }
        }
        for spec in &mut self.functions {
            if let Some(hosts) = overrides
                .get(&format!("{app}.{}", spec.name))
                .and_then(|o| o.allowed_outbound_hosts.as_ref())
            {
                spec.allowed_outbound_hosts = hosts.clone();
            }
        }
    }

    /// Lets the endpoints of a component without `describe` send requests to `hosts`
    /// (the `--allow-outbound` flag); components that describe themselves keep theirs.
    pub fn allow_plain_outbound(&mut self, hosts: &[String]) {
        for spec in &mut self.endpoints {
            if matches!(
                spec.kind,
                EndpointKind::Proxy | EndpointKind::Service | EndpointKind::WebServer
            ) {
                spec.allowed_outbound_hosts = hosts.to_vec();
            }
        }
    }

    /// The outbound allow-list of the endpoint or function named `name`.
    pub fn allowed_outbound_hosts(&self, name: &str) -> &[String] {
        let endpoint = self.endpoints.iter().find(|e| e.name == name);
        match endpoint {
            Some(e) => &e.allowed_outbound_hosts,
            None => self
                .function(name)
                .map_or(&[], |f| f.allowed_outbound_hosts.as_slice()),
        }
    }
}

impl EndpointSpec {
    /// The one endpoint of a component without `describe`, served with the host's defaults.
    pub fn defaults(name: &str, kind: EndpointKind) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            method: "*".into(),
            label: None,
            docs: false,
            requires_proxy_auth: false,
            custom_domains: Vec::new(),
            summary: None,
            args_schema: serde_json::json!({"type": "object", "properties": {}}),
            result_schema: None,
            timeout: None,
            memory_mib: None,
            gpu: None,
            allowed_outbound_hosts: Vec::new(),
            scaling: Scaling::default(),
            batching: None,
        }
    }

    /// The DNS label of this function: its name with `_` turned into `-`.
    pub fn dns_name(&self) -> String {
        self.name.replace('_', "-").to_ascii_lowercase()
    }
}

/// True when `s` can be one DNS label: 1–63 of `a-z0-9-`, not starting or ending with `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl AppManifest {
    /// The manifest of a component that does not describe itself: one endpoint of `kind`
    /// named after the app.
    pub fn synthesised(app: &str, kind: EndpointKind) -> Self {
        Self {
            app: app.to_owned(),
            sdk_version: String::new(),
            endpoints: vec![EndpointSpec::defaults(app, kind)],
            functions: Vec::new(),
            pre_init: false,
        }
    }
}

/// A DNS-safe app name made from a file stem: lower-cased, other characters become `-`.
pub fn app_name_from_stem(stem: &str) -> String {
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(63);
    let name = name.trim_matches('-').to_owned();
    if name.is_empty() { "app".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_the_backoff_and_cap() {
        let p = RetryPolicy {
            max_retries: 5,
            backoff_coefficient: 2.0,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        };
        let d: Vec<u64> = (1..=8).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("hello-app"));
        assert!(is_dns_label("a1"));
        assert!(!is_dns_label("Hello"));
        assert!(!is_dns_label("-x"));
        assert!(!is_dns_label("x-"));
        assert!(!is_dns_label("a_b"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn app_names_from_file_stems() {
        assert_eq!(app_name_from_stem("wasi_http_proxy"), "wasi-http-proxy");
        assert_eq!(app_name_from_stem("My.App"), "my-app");
        assert_eq!(app_name_from_stem("__"), "app");
        assert!(is_dns_label(&app_name_from_stem(&"x".repeat(100))));
    }
}
