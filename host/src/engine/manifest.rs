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
}

/// One web endpoint of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointSpec {
    /// Function name, unique within the app.
    pub name: String,
    /// The HTTP method it accepts.
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
}

impl EndpointSpec {
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
            let method = e.method.to_ascii_uppercase();
            if !METHODS.contains(&method.as_str()) {
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
        Ok(AppManifest {
            app: m.app,
            sdk_version: m.sdk_version,
            endpoints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
