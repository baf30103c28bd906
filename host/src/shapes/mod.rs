//! Shapes: how an HTTP request becomes guest calls and the guest's answer becomes a
//! response. Today: the typed `endpoint` world (Modal's `fastapi_endpoint`).

mod endpoint;
mod openapi;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use crate::engine::{AppManifest, CallContext, EndpointSpec, Engine, LoadedComponent};

/// Response body type every shape produces (boxed so shapes may stream).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A whole-bodied request handed to a shape.
pub type Request = hyper::Request<Bytes>;

/// A loaded component together with the engine that runs it: the unit the gateway routes to.
pub struct WebApp {
    engine: Arc<Engine>,
    component: Arc<LoadedComponent>,
    context: CallContext,
}

impl WebApp {
    /// Wraps a loaded component; its calls run with `context` (e.g. guest spawn/poll).
    pub fn new(engine: Arc<Engine>, component: Arc<LoadedComponent>, context: CallContext) -> Self {
        Self {
            engine,
            component,
            context,
        }
    }

    /// What the component describes.
    pub fn manifest(&self) -> &AppManifest {
        &self.component.manifest
    }

    /// The loaded component (digest, cache outcome, load time).
    pub fn component(&self) -> &Arc<LoadedComponent> {
        &self.component
    }

    /// Serves one request for the endpoint at `index` in the manifest.
    pub async fn serve(&self, index: usize, request: Request) -> hyper::Response<Body> {
        match self.component.manifest.endpoints.get(index) {
            Some(spec) => {
                endpoint::serve(&self.engine, &self.component, spec, request, &self.context).await
            }
            None => json_error(hyper::StatusCode::NOT_FOUND, "no such endpoint"),
        }
    }

    /// The OpenAPI document of one endpoint.
    pub fn openapi(&self, spec: &EndpointSpec) -> serde_json::Value {
        openapi::document(&self.component.manifest, spec)
    }
}

/// A full body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response `{"detail": message}` with the given status, FastAPI's error shape.
pub fn json_error(status: hyper::StatusCode, message: &str) -> hyper::Response<Body> {
    json_response(status, &serde_json::json!({ "detail": message }))
}

/// A JSON response with the given status.
pub fn json_response(
    status: hyper::StatusCode,
    value: &serde_json::Value,
) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
