//! Decoding the manifest a guest's `describe` returns into [`AppManifest`], refusing
//! what the host cannot serve with a clear reason.

use std::time::Duration;

use serde_json::Value;

use super::LoadError;
use super::bindings;
use crate::capabilities::volumes::Volumes;
use crate::manifest::{
    AppManifest, Batching, EndpointKind, EndpointSpec, FunctionSpec, RetryPolicy, Scaling,
    VolumeMount, is_dns_label,
};

/// Refuses a `gpu` requirement that names nothing.
fn check_gpu(what: &str, name: &str, gpu: Option<&str>) -> Result<(), LoadError> {
    match gpu {
        Some(gpu) if gpu.trim().is_empty() || gpu.len() > 100 => Err(LoadError::Describe(format!(
            "{what} {name:?} declares gpu = {gpu:?}: use \"any\" or an adapter name"
        ))),
        _ => Ok(()),
    }
}

/// Refuses an `allowed_outbound_hosts` entry that is not `scheme://host[:port]`.
fn check_outbound(what: &str, name: &str, hosts: &[String]) -> Result<(), LoadError> {
    crate::capabilities::outbound::Outbound::configure(hosts)
        .map(drop)
        .map_err(|e| LoadError::Describe(format!("{what} {name:?}: {e}")))
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
            check_gpu("endpoint", &e.name, e.gpu.as_deref())?;
            check_outbound("endpoint", &e.name, &e.allowed_outbound_hosts)?;
            let args_schema = parse("args-schema", &e.args_schema)?;
            let result_schema = e
                .result_schema
                .as_deref()
                .map(|s| parse("result-schema", s))
                .transpose()?;
            let batching = batching("endpoint", &e.name, e.batching)?;
            if batching.is_some() && kind != EndpointKind::Function {
                return Err(bad(format!(
                    "endpoint {:?}: only typed function endpoints can be batched",
                    e.name
                )));
            }
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
                allowed_outbound_hosts: e.allowed_outbound_hosts,
                scaling: Scaling {
                    max_inputs: e.scaling.max_inputs,
                    min_containers: e.scaling.min_containers,
                    max_containers: e.scaling.max_containers,
                    buffer_containers: e.scaling.buffer_containers,
                    scaledown_window: e.scaling.scaledown_window_ms.map(Duration::from_millis),
                    per_request: e.scaling.per_request,
                    reuse: false,
                },
                batching,
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

/// A function's or endpoint's batching, its size checked and its wait bounded.
fn batching(
    what: &str,
    name: &str,
    batching: Option<bindings::wasmhost::guest::types::Batching>,
) -> Result<Option<Batching>, LoadError> {
    match batching {
        Some(b) if b.max_batch_size == 0 || b.max_batch_size > MAX_BATCH_SIZE => {
            Err(LoadError::Describe(format!(
                "{what} {name:?}: max_batch_size must be 1 to {MAX_BATCH_SIZE}, not {}",
                b.max_batch_size
            )))
        }
        Some(b) => Ok(Some(Batching {
            max_batch_size: b.max_batch_size as usize,
            wait: Duration::from_millis(b.wait_ms.min(MAX_BATCH_WAIT_MS)),
        })),
        None => Ok(None),
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
    check_gpu("function", &f.name, f.gpu.as_deref())?;
    check_outbound("function", &f.name, &f.allowed_outbound_hosts)?;
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
    let batching = batching("function", &f.name, f.batching)?;
    let mounts = f
        .volumes
        .iter()
        .map(|v| (v.volume.as_str(), v.path.as_str()));
    Volumes::configure(mounts).map_err(|e| bad(format!("function {:?}: {e}", f.name)))?;
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
        gpu: f.gpu,
        allowed_outbound_hosts: f.allowed_outbound_hosts,
        batching,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            gpu: None,
            allowed_outbound_hosts: Vec::new(),
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
