//! Standard `wasi:http/incoming-handler` components, served unmodified by
//! wasmtime-wasi-http: the request streams in, the response streams out.

use std::sync::Arc;

use http_body_util::BodyExt;

use super::{Body, Request, failure};
use crate::engine::{EndpointSpec, Engine, LoadedComponent};

pub(super) async fn serve(
    engine: &Arc<Engine>,
    component: &Arc<LoadedComponent>,
    spec: &EndpointSpec,
    request: Request,
) -> hyper::Response<Body> {
    match engine.proxy(component, spec, request).await {
        Ok(response) => response.map(|body| {
            body.map_err(|e| std::io::Error::other(format!("{e:?}")))
                .boxed_unsync()
        }),
        Err(err) => failure(&component.manifest.app, spec, err),
    }
}
