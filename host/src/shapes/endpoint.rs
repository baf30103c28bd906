//! The `endpoint` shape: one typed function per URL. The host checks the method and
//! serves the docs; the guest SDK parses arguments (422s) and encodes the result.

use hyper::header::{ALLOW, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Method, StatusCode};

use super::{Body, Request, full, json_error, json_response};
use crate::engine::{CallContext, CallError, EndpointSpec, Engine, LoadedComponent, Response};

const DOCS_HTML: &str = include_str!("docs.html");

pub(super) async fn serve(
    engine: &Engine,
    component: &LoadedComponent,
    spec: &EndpointSpec,
    request: Request,
    context: &CallContext,
) -> hyper::Response<Body> {
    let path = request.uri().path();
    if spec.docs && request.method() == Method::GET {
        match path {
            "/openapi.json" => {
                return json_response(
                    StatusCode::OK,
                    &super::openapi::document(&component.manifest, spec),
                );
            }
            "/docs" => {
                let mut r = hyper::Response::new(full(DOCS_HTML));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                return r;
            }
            _ => {}
        }
    }
    if path != "/" {
        return json_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let allowed = spec.method.as_str();
    let method = request.method().as_str();
    let head_of_get = method == "HEAD" && allowed == "GET";
    if method != allowed && !head_of_get {
        let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        if let Ok(v) = HeaderValue::from_str(allowed) {
            r.headers_mut().insert(ALLOW, v);
        }
        return r;
    }
    match engine
        .handle(component, spec, to_guest(request, head_of_get), context)
        .await
    {
        Ok(response) => from_guest(response),
        Err(err) => failure(&component.manifest.app, spec, err),
    }
}

fn to_guest(request: Request, as_get: bool) -> crate::engine::Request {
    let (parts, body) = request.into_parts();
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    crate::engine::Request {
        method: if as_get {
            "GET".into()
        } else {
            parts.method.as_str().to_owned()
        },
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        body: body.to_vec(),
    }
}

fn from_guest(response: Response) -> hyper::Response<Body> {
    let status = match StatusCode::from_u16(response.status) {
        Ok(s) => s,
        Err(_) => {
            return json_error(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "the endpoint answered an invalid status {}",
                    response.status
                ),
            );
        }
    };
    let mut r = hyper::Response::new(full(response.body));
    *r.status_mut() = status;
    for (name, value) in response.headers {
        // A header the guest got wrong is dropped rather than failing the response.
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                r.headers_mut().append(n, v);
            }
            _ => tracing::warn!(header = %name, "guest sent an invalid header; dropped"),
        }
    }
    r
}

fn failure(app: &str, spec: &EndpointSpec, err: CallError) -> hyper::Response<Body> {
    tracing::warn!(app, function = %spec.name, "call failed: {err}");
    let status = match err {
        CallError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        CallError::Instantiate(_) => StatusCode::SERVICE_UNAVAILABLE,
        CallError::OutOfMemory { .. } | CallError::Trap(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut r = json_error(status, &format!("function {:?} {err}", spec.name));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}
