//! Shapes: how an HTTP request becomes guest calls and the guest's answer becomes a
//! response. `endpoint` (typed functions and class methods), `asgi` (streaming, SSE,
//! WebSockets), `wsgi`, and standard `wasi:http` proxy components.

mod admission;
mod asgi;
mod body;
mod endpoint;
mod openapi;
mod proxy;
mod respond;
mod web_server;
mod websocket;
mod wsgi;

use std::sync::Arc;

use hyper::StatusCode;
use hyper::header::{HeaderValue, RETRY_AFTER};

pub use crate::http::{Body, full, json_error, json_response};
pub use asgi::ClientAddr;
pub use body::{BodyError, BodyLimits, RequestBody, limit_body};

use crate::engine::{
    AppManifest, CallError, EndpointKind, EndpointRequests, EndpointSpec, Engine, LoadedComponent,
};

/// A request handed to a shape: its body is streamed, bounded by the gateway's limit.
pub type Request = hyper::Request<RequestBody>;

/// A shape serving one request.
type ShapeFuture<'a> = std::pin::Pin<Box<dyn Future<Output = hyper::Response<Body>> + Send + 'a>>;

/// A loaded component together with the engine that runs it: the unit the gateway routes to.
pub struct WebApp {
    engine: Arc<Engine>,
    component: Arc<LoadedComponent>,
    /// One admission gate per endpoint, in manifest order.
    gates: Vec<admission::Admission>,
    /// The request series of each endpoint, in manifest order.
    requests: Vec<EndpointRequests>,
    /// Retires idle warm instances past the scale-down window while the app lives.
    sweeper: Option<tokio::task::AbortHandle>,
}

impl Drop for WebApp {
    fn drop(&mut self) {
        if let Some(s) = &self.sweeper {
            s.abort();
        }
    }
}

impl WebApp {
    /// Wraps a loaded component; each endpoint gets the engine's concurrency and queue bounds.
    pub fn new(engine: Arc<Engine>, component: Arc<LoadedComponent>) -> Self {
        let c = engine.config();
        let gates = component
            .manifest
            .endpoints
            .iter()
            .map(|spec| {
                let labels = crate::engine::FunctionLabels {
                    app: component.manifest.app.clone(),
                    function: spec.name.clone(),
                };
                admission::Admission::new(
                    engine.max_concurrency_in(&component, spec),
                    c.queue_depth,
                    c.queue_timeout,
                    engine.metrics().queue_depth.get_or_create(&labels).clone(),
                )
            })
            .collect();
        let requests = component
            .manifest
            .endpoints
            .iter()
            .map(|spec| {
                engine
                    .metrics()
                    .endpoint_requests(&component.manifest.app, &spec.name)
            })
            .collect();
        let sweeper = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let (engine, weak) = (engine.clone(), Arc::downgrade(&component));
            let every = (engine.config().scaledown_window / 4).clamp(
                std::time::Duration::from_millis(100),
                std::time::Duration::from_secs(15),
            );
            rt.spawn(async move {
                if let Some(component) = weak.upgrade() {
                    engine.prewarm(&component).await;
                }
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let Some(component) = weak.upgrade() else { break };
                    let retired = engine.scale_down(&component).await;
                    if retired > 0 {
                        tracing::debug!(app = %component.manifest.app, retired, "scaled down idle instances");
                    }
                }
            })
            .abort_handle()
        });
        Self {
            engine,
            component,
            gates,
            requests,
            sweeper,
        }
    }

    /// Counts one request of the endpoint at `index` in `/metrics`.
    pub fn record_request(&self, index: usize, status: u16, took: std::time::Duration) {
        if let Some(series) = self.requests.get(index) {
            series.record(self.engine.metrics(), status, took);
        }
    }

    /// What the component describes.
    pub fn manifest(&self) -> &AppManifest {
        &self.component.manifest
    }

    /// The engine that runs it.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The loaded component (digest, cache outcome, load time).
    pub fn component(&self) -> &Arc<LoadedComponent> {
        &self.component
    }

    /// Serves one request for the endpoint at `index` in the manifest.
    pub async fn serve(&self, index: usize, request: Request) -> hyper::Response<Body> {
        let (Some(spec), Some(gate)) = (
            self.component.manifest.endpoints.get(index),
            self.gates.get(index),
        ) else {
            return json_error(StatusCode::NOT_FOUND, "no such endpoint");
        };
        // Shapes that take the body whole read it before taking a slot, so clients that
        // send slowly (or never) wait on their own connection, not on the endpoint's slots.
        let request = if matches!(
            spec.kind,
            EndpointKind::Function | EndpointKind::Method | EndpointKind::Wsgi
        ) {
            let (parts, body) = request.into_parts();
            match body::collect(body).await {
                Ok(bytes) => Request::from_parts(parts, body::buffered(bytes)),
                Err(e) => return json_error(e.status(), &e.to_string()),
            }
        } else {
            request
        };
        let _permit = match gate.admit().await {
            Ok(permit) => permit,
            Err(refused) => {
                let labels = crate::engine::FunctionLabels {
                    app: self.component.manifest.app.clone(),
                    function: spec.name.clone(),
                };
                self.engine.metrics().rejected.get_or_create(&labels).inc();
                let mut r = json_error(StatusCode::SERVICE_UNAVAILABLE, &refused.to_string());
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
        };
        self.engine.ensure_buffer(&self.component, spec);
        // Boxed: a shape's future holds a guest call's whole state (several KiB), and
        // every layer above (the long-request runner, the gateway, hyper) moves its own
        // future before first polling it; kept inline, that state was copied half a dozen
        // times a request (`memmove` was the top user-space symbol under load).
        let (engine, component) = (&self.engine, &self.component);
        let shape: ShapeFuture<'_> = match spec.kind {
            EndpointKind::Function | EndpointKind::Method => {
                Box::pin(endpoint::serve(engine, component, spec, request))
            }
            EndpointKind::Proxy | EndpointKind::Service => {
                Box::pin(proxy::serve(engine, component, spec, request))
            }
            EndpointKind::WebServer => {
                Box::pin(web_server::serve(engine, component, spec, request))
            }
            EndpointKind::Asgi => Box::pin(asgi::serve(
                engine.clone(),
                component.clone(),
                index,
                request,
            )),
            EndpointKind::Wsgi => Box::pin(wsgi::serve(
                engine.clone(),
                component.clone(),
                index,
                request,
            )),
        };
        shape.await
    }

    /// Retires the app's warm instances (lifespan shutdown, class `exit`); call it once
    /// the gateway stopped serving.
    pub async fn retire(&self) {
        self.engine.retire(&self.component).await;
    }

    /// The OpenAPI document of one endpoint.
    pub fn openapi(&self, spec: &EndpointSpec) -> serde_json::Value {
        openapi::document(&self.component.manifest, spec)
    }
}

/// The response for a call that failed: 504 for a timeout, 503 (retry) when no instance
/// could start, 500 when the guest trapped, produced no response or lacks the export
/// (the guest is the app, not an upstream, and retrying cannot help).
fn failure(app: &str, spec: &EndpointSpec, err: CallError) -> hyper::Response<Body> {
    tracing::warn!(app, function = %spec.name, "call failed: {err}");
    let status = match err {
        CallError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        CallError::Instantiate(_) => StatusCode::SERVICE_UNAVAILABLE,
        CallError::NoResponse(_)
        | CallError::OutOfMemory { .. }
        | CallError::Trap(_)
        | CallError::MissingExport(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut r = json_error(status, &format!("function {:?} {err}", spec.name));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// Turns guest header pairs into a header map, dropping (and logging) invalid ones.
fn guest_headers(headers: Vec<(String, String)>, into: &mut hyper::HeaderMap) {
    for (name, value) in headers {
        match (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                into.append(n, v);
            }
            _ => tracing::warn!(header = %name, "guest sent an invalid header; dropped"),
        }
    }
}

/// Request headers as the guest sees them: lower-case names, UTF-8 values.
fn request_headers(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{InstantiateError, Trap};

    #[test]
    fn only_a_host_at_capacity_asks_the_client_to_retry() {
        let spec = EndpointSpec::defaults("e", EndpointKind::Function);
        let answer = |err| failure("app", &spec, err);
        let missing = answer(CallError::MissingExport("endpoint-handler"));
        assert_eq!(missing.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(missing.headers().get(RETRY_AFTER).is_none());
        assert_eq!(
            answer(CallError::Trap(Trap::Ended)).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let stopped = answer(InstantiateError::Stopped.into());
        assert_eq!(stopped.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(stopped.headers()[RETRY_AFTER], "1");
    }
}
