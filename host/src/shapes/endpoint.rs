//! The `endpoint` shape: one typed function per URL. The host checks the method and
//! serves the docs; the guest SDK parses arguments (422s) and encodes the result.

use std::sync::Arc;

use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, StatusCode};

use super::body::collect;
use super::{Body, Request, failure, full, guest_headers, json_error, json_response};
use crate::engine::{EndpointSpec, Engine, LoadedComponent, Response};

const DOCS_HTML: &str = include_str!("docs.html");

pub(super) async fn serve(
    engine: &Arc<Engine>,
    component: &Arc<LoadedComponent>,
    spec: &EndpointSpec,
    request: Request,
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
    let (parts, body) = request.into_parts();
    let body = match collect(body).await {
        Ok(body) => body,
        Err(e) => return json_error(e.status(), &e.to_string()),
    };
    match engine
        .handle(component, spec, to_guest(parts, body, head_of_get))
        .await
    {
        Ok(response) => from_guest(response),
        Err(err) => failure(&component.manifest.app, spec, err),
    }
}

fn to_guest(
    parts: hyper::http::request::Parts,
    body: bytes::Bytes,
    as_get: bool,
) -> crate::engine::Request {
    let headers = super::request_headers(&parts.headers);
    crate::engine::Request {
        method: if as_get {
            "GET".into()
        } else {
            parts.method.as_str().to_owned()
        },
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        // Takes the buffer over when nothing else holds it (no copy).
        body: Vec::from(body),
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
    guest_headers(response.headers, r.headers_mut());
    r
}
