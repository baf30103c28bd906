//! Decoding the manifest a guest's `describe` returns (the WIT `manifest` record, the one
//! definition of what a guest states) into the host's checked [`AppManifest`], refusing
//! what the host cannot serve with a typed reason. Every WIT record is destructured
//! field by field, so a field added to the WIT does not compile here until it is handled.

use std::time::Duration;

use serde_json::Value;

use super::bindings::wasmhost::guest::types as wit;
use crate::capabilities::broker::Broker;
use crate::capabilities::env::Env;
use crate::capabilities::gpu::Gpu;
use crate::capabilities::outbound::Outbound;
use crate::capabilities::volumes::Volumes;
use crate::capabilities::{Capability, Declared};
use crate::manifest::{
    AppManifest, Batching, EndpointKind, EndpointSpec, FunctionSpec, RetryPolicy, Scaling,
    VolumeMount, is_dns_label,
};

/// The largest batch a batched function may ask for (Modal's limit is 1000).
const MAX_BATCH_SIZE: u32 = 1000;
/// The longest a batch may wait for more calls, in milliseconds (Modal's limit: 10 min).
const MAX_BATCH_WAIT_MS: u64 = 600_000;

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Why the host refuses what a guest's `describe` states.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The app's name cannot be part of a host name.
    #[error("app name {0:?} is not DNS-safe (use 1-63 of a-z, 0-9 and '-')")]
    AppName(String),
    /// An endpoint's or function's name cannot be part of a host name.
    #[error("{what} name {name:?} is not DNS-safe")]
    Name {
        /// `endpoint` or `function`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// An endpoint's label cannot be a host name.
    #[error("label {label:?} of endpoint {name:?} is not DNS-safe")]
    Label {
        /// The endpoint.
        name: String,
        /// Its label.
        label: String,
    },
    /// Two endpoints or functions share a name.
    #[error("two functions or endpoints are named {0:?}")]
    Duplicate(String),
    /// An endpoint accepts a method that is not HTTP's.
    #[error("endpoint {name:?} has unknown method {method:?}")]
    Method {
        /// The endpoint.
        name: String,
        /// Its method.
        method: String,
    },
    /// A schema is not JSON.
    #[error("{what} {name:?}: {field} is not JSON: {source}")]
    NotJson {
        /// `endpoint` or `function`.
        what: &'static str,
        /// Its name.
        name: String,
        /// `args-schema` or `result-schema`.
        field: &'static str,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A batch size out of bounds.
    #[error("{what} {name:?}: max_batch_size must be 1 to {MAX_BATCH_SIZE}, not {size}")]
    BatchSize {
        /// `endpoint` or `function`.
        what: &'static str,
        /// Its name.
        name: String,
        /// The size asked for.
        size: u32,
    },
    /// Batching of an endpoint that is not a typed function.
    #[error("endpoint {0:?}: only typed function endpoints can be batched")]
    BatchKind(String),
    /// A retry backoff that would shrink delays (or is not a number).
    #[error("function {name:?}: backoff coefficient must be at least 1.0, not {value}")]
    Backoff {
        /// The function.
        name: String,
        /// Its coefficient.
        value: f64,
    },
    /// A capability refuses what the endpoint or function declares.
    #[error("{what} {name:?}: {source}")]
    Capability {
        /// `endpoint` or `function`.
        what: &'static str,
        /// Its name.
        name: String,
        /// The capability's reason.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Step 2 of every capability's lifecycle for one endpoint or function.
fn configure(declared: Declared<'_>) -> Result<(), ManifestError> {
    fn one<C: Capability>(declared: &Declared<'_>) -> Result<(), ManifestError> {
        C::configure(declared)
            .map(drop)
            .map_err(|e| ManifestError::Capability {
                what: declared.what,
                name: declared.name.to_owned(),
                source: Box::new(e),
            })
    }
    one::<Env>(&declared)?;
    one::<Volumes>(&declared)?;
    one::<Outbound>(&declared)?;
    one::<Broker>(&declared)?;
    one::<Gpu>(&declared)
}

/// A schema the guest sent as text, parsed.
fn schema(
    what: &'static str,
    name: &str,
    field: &'static str,
    text: &str,
) -> Result<Value, ManifestError> {
    serde_json::from_str(text).map_err(|source| ManifestError::NotJson {
        what,
        name: name.to_owned(),
        field,
        source,
    })
}

/// A function's or endpoint's batching, its size checked and its wait bounded.
fn batching(
    what: &'static str,
    name: &str,
    batching: Option<wit::Batching>,
) -> Result<Option<Batching>, ManifestError> {
    let Some(wit::Batching {
        max_batch_size,
        wait_ms,
    }) = batching
    else {
        return Ok(None);
    };
    if max_batch_size == 0 || max_batch_size > MAX_BATCH_SIZE {
        return Err(ManifestError::BatchSize {
            what,
            name: name.to_owned(),
            size: max_batch_size,
        });
    }
    Ok(Some(Batching {
        max_batch_size: max_batch_size as usize,
        wait: Duration::from_millis(wait_ms.min(MAX_BATCH_WAIT_MS)),
    }))
}

impl TryFrom<wit::Manifest> for AppManifest {
    type Error = ManifestError;

    fn try_from(m: wit::Manifest) -> Result<Self, ManifestError> {
        let wit::Manifest {
            app,
            sdk_version,
            endpoints: raw_endpoints,
            functions: raw_functions,
            pre_init,
        } = m;
        if !is_dns_label(&app) {
            return Err(ManifestError::AppName(app));
        }
        let mut endpoints: Vec<EndpointSpec> = Vec::with_capacity(raw_endpoints.len());
        for e in raw_endpoints {
            let spec = endpoint_spec(e)?;
            if endpoints.iter().any(|x| x.dns_name() == spec.dns_name()) {
                return Err(ManifestError::Duplicate(spec.dns_name()));
            }
            endpoints.push(spec);
        }
        let mut functions: Vec<FunctionSpec> = Vec::with_capacity(raw_functions.len());
        for f in raw_functions {
            let spec = function_spec(f)?;
            if endpoints.iter().any(|e| e.name == spec.name)
                || functions.iter().any(|x| x.name == spec.name)
            {
                return Err(ManifestError::Duplicate(spec.name));
            }
            functions.push(spec);
        }
        Ok(AppManifest {
            app,
            sdk_version,
            endpoints,
            functions,
            pre_init,
        })
    }
}

/// Why a manifest given as JSON cannot be served.
#[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
#[derive(Debug, thiserror::Error)]
pub(super) enum FromJsonError {
    /// Not JSON of the WIT `manifest` record.
    #[error("not a manifest: {0}")]
    Json(#[from] serde_json::Error),
    /// A manifest the host refuses.
    #[error(transparent)]
    Refused(#[from] ManifestError),
}

/// Decodes the WIT `manifest` record written as JSON (the fuzzer's input), as if
/// `describe` had returned it.
#[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
pub(super) fn from_json(data: &[u8]) -> Result<AppManifest, FromJsonError> {
    let raw: wit::Manifest = serde_json::from_slice(data)?;
    Ok(AppManifest::try_from(raw)?)
}

/// One endpoint of a manifest, checked on its own.
fn endpoint_spec(e: wit::EndpointInfo) -> Result<EndpointSpec, ManifestError> {
    let wit::EndpointInfo {
        name,
        kind,
        method,
        label,
        docs,
        requires_proxy_auth,
        custom_domains,
        summary,
        args_schema,
        result_schema,
        timeout_ms,
        memory_mib,
        gpu,
        allowed_outbound_hosts,
        scaling,
        batching: raw_batching,
    } = e;
    let kind = match kind {
        wit::EndpointKind::Function => EndpointKind::Function,
        wit::EndpointKind::Method => EndpointKind::Method,
        wit::EndpointKind::Asgi => EndpointKind::Asgi,
        wit::EndpointKind::Wsgi => EndpointKind::Wsgi,
    };
    let method = if kind.routes_itself() {
        "*".to_owned()
    } else {
        let upper = method.to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            return Err(ManifestError::Method { name, method });
        }
        upper
    };
    let batching = batching("endpoint", &name, raw_batching)?;
    if batching.is_some() && kind != EndpointKind::Function {
        return Err(ManifestError::BatchKind(name));
    }
    let wit::Scaling {
        max_inputs,
        min_containers,
        max_containers,
        buffer_containers,
        scaledown_window_ms,
        per_request,
    } = scaling;
    let spec = EndpointSpec {
        args_schema: schema("endpoint", &name, "args-schema", &args_schema)?,
        result_schema: result_schema
            .map(|s| schema("endpoint", &name, "result-schema", &s))
            .transpose()?,
        name,
        kind,
        method,
        label,
        docs,
        requires_proxy_auth,
        custom_domains,
        summary,
        timeout: timeout_ms.map(Duration::from_millis),
        memory_mib,
        gpu,
        allowed_outbound_hosts,
        scaling: Scaling {
            max_inputs,
            min_containers,
            max_containers,
            buffer_containers,
            scaledown_window: scaledown_window_ms.map(Duration::from_millis),
            per_request,
            // Only the operator may ask for reuse the shape does not promise.
            reuse: false,
        },
        batching,
    };
    if !is_dns_label(&spec.dns_name()) {
        return Err(ManifestError::Name {
            what: "endpoint",
            name: spec.name,
        });
    }
    if let Some(label) = &spec.label
        && !is_dns_label(label)
    {
        return Err(ManifestError::Label {
            label: label.clone(),
            name: spec.name,
        });
    }
    configure(Declared::from(&spec))?;
    Ok(spec)
}

/// One function of a manifest, checked on its own.
fn function_spec(f: wit::FunctionInfo) -> Result<FunctionSpec, ManifestError> {
    let wit::FunctionInfo {
        name,
        summary,
        args_schema,
        params,
        result_schema,
        retries,
        timeout_ms,
        memory_mib,
        schedule,
        secrets,
        volumes,
        gpu,
        allowed_outbound_hosts,
        batching: raw_batching,
    } = f;
    if !is_dns_label(&name.replace('_', "-").to_ascii_lowercase()) {
        return Err(ManifestError::Name {
            what: "function",
            name,
        });
    }
    let retries = match retries {
        Some(wit::RetryPolicy {
            backoff_coefficient,
            ..
        }) if !(backoff_coefficient.is_finite() && backoff_coefficient >= 1.0) => {
            return Err(ManifestError::Backoff {
                name,
                value: backoff_coefficient,
            });
        }
        Some(wit::RetryPolicy {
            max_retries,
            backoff_coefficient,
            initial_delay_ms,
            max_delay_ms,
        }) => Some(RetryPolicy {
            max_retries: max_retries.min(100),
            backoff_coefficient,
            initial_delay: Duration::from_millis(initial_delay_ms),
            max_delay: Duration::from_millis(max_delay_ms),
        }),
        None => None,
    };
    let spec = FunctionSpec {
        args_schema: schema("function", &name, "args-schema", &args_schema)?,
        result_schema: result_schema
            .map(|s| schema("function", &name, "result-schema", &s))
            .transpose()?,
        batching: batching("function", &name, raw_batching)?,
        name,
        summary,
        params,
        retries,
        timeout: timeout_ms.map(Duration::from_millis),
        memory_mib,
        schedule,
        secrets,
        volumes: volumes
            .into_iter()
            .map(|wit::VolumeMount { volume, path }| VolumeMount { volume, path })
            .collect(),
        gpu,
        allowed_outbound_hosts,
    };
    configure(Declared::from(&spec))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzzer's seed: every record and field of the WIT manifest.
    const SEED: &str = include_str!("../../../fuzz/seeds/manifest/full.json");

    #[test]
    fn a_manifest_as_json_decodes_like_describes_answer() {
        let manifest = from_json(SEED.as_bytes()).expect("the seed is a valid manifest");
        assert_eq!(manifest.app, "seed");
        assert_eq!(manifest.endpoints[0].kind, EndpointKind::Function);
        assert_eq!(manifest.endpoints[0].method, "POST");
        let f = manifest.function("work").expect("function");
        assert_eq!(f.volumes[0].path, "/data");
        assert_eq!(f.retries.expect("retries").max_retries, 3);
        assert_eq!(f.batching.expect("batched").max_batch_size, 8);
        // A record missing a field (here misnamed) is not a manifest.
        let extra = SEED.replacen("\"pre_init\"", "\"pre_init_typo\"", 1);
        assert!(matches!(
            from_json(extra.as_bytes()),
            Err(FromJsonError::Json(_))
        ));
        let bad = SEED.replacen("\"app\": \"seed\"", "\"app\": \"Not DNS\"", 1);
        assert!(matches!(
            from_json(bad.as_bytes()),
            Err(FromJsonError::Refused(ManifestError::AppName(_)))
        ));
    }

    #[test]
    fn batching_is_checked_and_bounded() {
        use wit as raw;
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
            function_spec(function(Some(raw::Batching {
                max_batch_size,
                wait_ms,
            })))
        };
        let batching = spec(8, u64::MAX).expect("valid").batching.expect("batched");
        assert_eq!(batching.max_batch_size, 8);
        assert_eq!(batching.wait, Duration::from_millis(MAX_BATCH_WAIT_MS));
        for size in [0, MAX_BATCH_SIZE + 1] {
            let err = spec(size, 10).expect_err("refused").to_string();
            assert!(err.contains("max_batch_size must be 1 to 1000"), "{err}");
        }
        assert_eq!(function_spec(function(None)).expect("plain").batching, None);
    }
}
