//! The app manifest a component states through `describe`, checked and made serialisable.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::LoadError;
use super::bindings;

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
    /// How its instances scale; the host's flags fill what is absent.
    #[serde(default)]
    pub scaling: Scaling,
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
            }
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
            scaling: Scaling::default(),
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

/// The largest batch a batched function may ask for (Modal's limit is 1000).
const MAX_BATCH_SIZE: u32 = 1000;
/// The longest a batch may wait for more calls, in milliseconds (Modal's limit: 10 min).
const MAX_BATCH_WAIT_MS: u64 = 600_000;

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

impl TryFrom<bindings::Manifest> for AppManifest {
    type Error = LoadError;

    fn try_from(m: bindings::Manifest) -> Result<Self, LoadError> {
        let bad = |msg: String| LoadError::Describe(msg);
        if !is_dns_label(&m.app) {
            return Err(bad(format!(
                "app name {:?} is not DNS-safe (use 1-63 of a-z, 0-9 and '-')",
                m.app
            )));
        }
        let mut endpoints = Vec::with_capacity(m.endpoints.len());
        for e in m.endpoints {
            let kind = match e.kind {
                bindings::EndpointKind::Function => EndpointKind::Function,
                bindings::EndpointKind::Method => EndpointKind::Method,
                bindings::EndpointKind::Asgi => EndpointKind::Asgi,
                bindings::EndpointKind::Wsgi => EndpointKind::Wsgi,
            };
            let method = if kind.routes_itself() {
                "*".to_owned()
            } else {
                e.method.to_ascii_uppercase()
            };
            if !kind.routes_itself() && !METHODS.contains(&method.as_str()) {
                return Err(bad(format!(
                    "endpoint {:?} has unknown method {:?}",
                    e.name, e.method
                )));
            }
            let parse = |what: &str, s: &str| {
                serde_json::from_str::<Value>(s)
                    .map_err(|err| bad(format!("endpoint {:?}: {what} is not JSON: {err}", e.name)))
            };
            if let Some(gpu) = &e.gpu
                && (gpu.trim().is_empty() || gpu.len() > 100)
            {
                return Err(bad(format!(
                    "endpoint {:?} declares gpu = {gpu:?}: use \"any\" or an adapter name",
                    e.name
                )));
            }
            let args_schema = parse("args-schema", &e.args_schema)?;
            let result_schema = e
                .result_schema
                .as_deref()
                .map(|s| parse("result-schema", s))
                .transpose()?;
            let spec = EndpointSpec {
                name: e.name.clone(),
                kind,
                method,
                label: e.label,
                docs: e.docs,
                requires_proxy_auth: e.requires_proxy_auth,
                custom_domains: e.custom_domains,
                summary: e.summary,
                args_schema,
                result_schema,
                timeout: e.timeout_ms.map(Duration::from_millis),
                memory_mib: e.memory_mib,
                gpu: e.gpu,
                scaling: Scaling {
                    max_inputs: e.scaling.max_inputs,
                    min_containers: e.scaling.min_containers,
                    max_containers: e.scaling.max_containers,
                    buffer_containers: e.scaling.buffer_containers,
                    scaledown_window: e.scaling.scaledown_window_ms.map(Duration::from_millis),
                    per_request: e.scaling.per_request,
                    reuse: false,
                },
            };
            if !is_dns_label(&spec.dns_name()) {
                return Err(bad(format!("endpoint name {:?} is not DNS-safe", e.name)));
            }
            if let Some(label) = &spec.label
                && !is_dns_label(label)
            {
                return Err(bad(format!(
                    "label {label:?} of endpoint {:?} is not DNS-safe",
                    e.name
                )));
            }
            if endpoints
                .iter()
                .any(|x: &EndpointSpec| x.dns_name() == spec.dns_name())
            {
                return Err(bad(format!(
                    "two endpoints are named {:?}",
                    spec.dns_name()
                )));
            }
            endpoints.push(spec);
        }
        let mut functions: Vec<FunctionSpec> = Vec::with_capacity(m.functions.len());
        for f in m.functions {
            let spec = function_spec(f, &endpoints, &functions)?;
            functions.push(spec);
        }
        Ok(AppManifest {
            app: m.app,
            sdk_version: m.sdk_version,
            endpoints,
            functions,
            pre_init: m.pre_init,
        })
    }
}

/// One function of a manifest, checked against the endpoints and functions before it.
fn function_spec(
    f: bindings::wasmhost::guest::types::FunctionInfo,
    endpoints: &[EndpointSpec],
    functions: &[FunctionSpec],
) -> Result<FunctionSpec, LoadError> {
    let bad = |msg: String| LoadError::Describe(msg);
    if endpoints.iter().any(|e| e.name == f.name) || functions.iter().any(|x| x.name == f.name) {
        return Err(bad(format!(
            "two functions or endpoints are named {:?}",
            f.name
        )));
    }
    if !is_dns_label(&f.name.replace('_', "-").to_ascii_lowercase()) {
        return Err(bad(format!("function name {:?} is not DNS-safe", f.name)));
    }
    let parse = |what: &str, s: &str| {
        serde_json::from_str::<Value>(s)
            .map_err(|err| bad(format!("function {:?}: {what} is not JSON: {err}", f.name)))
    };
    let args_schema = parse("args-schema", &f.args_schema)?;
    let result_schema = f
        .result_schema
        .as_deref()
        .map(|s| parse("result-schema", s))
        .transpose()?;
    let retries = match f.retries {
        Some(r) if !(r.backoff_coefficient.is_finite() && r.backoff_coefficient >= 1.0) => {
            return Err(bad(format!(
                "function {:?}: backoff coefficient must be at least 1.0, not {}",
                f.name, r.backoff_coefficient
            )));
        }
        Some(r) => Some(RetryPolicy {
            max_retries: r.max_retries.min(100),
            backoff_coefficient: r.backoff_coefficient,
            initial_delay: Duration::from_millis(r.initial_delay_ms),
            max_delay: Duration::from_millis(r.max_delay_ms),
        }),
        None => None,
    };
    let batching = match f.batching {
        Some(b) if b.max_batch_size == 0 || b.max_batch_size > MAX_BATCH_SIZE => {
            return Err(bad(format!(
                "function {:?}: max_batch_size must be 1 to {MAX_BATCH_SIZE}, not {}",
                f.name, b.max_batch_size
            )));
        }
        Some(b) => Some(Batching {
            max_batch_size: b.max_batch_size as usize,
            wait: Duration::from_millis(b.wait_ms.min(MAX_BATCH_WAIT_MS)),
        }),
        None => None,
    };
    for v in &f.volumes {
        if !is_dns_label(&v.volume) || !v.path.starts_with('/') {
            return Err(bad(format!(
                "function {:?}: volume mount {:?} at {:?} needs a DNS-safe name and an absolute path",
                f.name, v.volume, v.path
            )));
        }
    }
    Ok(FunctionSpec {
        name: f.name,
        summary: f.summary,
        args_schema,
        params: f.params,
        result_schema,
        retries,
        timeout: f.timeout_ms.map(Duration::from_millis),
        memory_mib: f.memory_mib,
        schedule: f.schedule,
        secrets: f.secrets,
        volumes: f
            .volumes
            .into_iter()
            .map(|v| VolumeMount {
                volume: v.volume,
                path: v.path,
            })
            .collect(),
        batching,
    })
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

    #[test]
    fn batching_is_checked_and_bounded() {
        use bindings::wasmhost::guest::types as raw;
        let function = |batching| raw::FunctionInfo {
            name: "f".into(),
            summary: None,
            args_schema: "{}".into(),
            params: vec!["x".into()],
            result_schema: None,
            retries: None,
            timeout_ms: None,
            memory_mib: None,
            schedule: None,
            secrets: Vec::new(),
            volumes: Vec::new(),
            batching,
        };
        let spec = |max_batch_size, wait_ms| {
            function_spec(
                function(Some(raw::Batching {
                    max_batch_size,
                    wait_ms,
                })),
                &[],
                &[],
            )
        };
        let batching = spec(8, u64::MAX).expect("valid").batching.expect("batched");
        assert_eq!(batching.max_batch_size, 8);
        assert_eq!(batching.wait, Duration::from_millis(MAX_BATCH_WAIT_MS));
        for size in [0, MAX_BATCH_SIZE + 1] {
            let err = spec(size, 10).expect_err("refused").to_string();
            assert!(err.contains("max_batch_size must be 1 to 1000"), "{err}");
        }
        assert_eq!(
            function_spec(function(None), &[], &[])
                .expect("plain")
                .batching,
            None
        );
    }
}
