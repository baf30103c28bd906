//! Generic HTTP response helpers every layer that answers HTTP uses (gateway, shapes,
//! control): the boxed body type, whole bodies and FastAPI-shaped JSON errors. A leaf: it
//! knows nothing of guests or state.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::header::HeaderValue;

/// Response body type of every answer (boxed so shapes may stream).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A full body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response `{"detail": message}` with the given status, FastAPI's error shape.
pub fn json_error(status: StatusCode, message: &str) -> hyper::Response<Body> {
    json_response(status, &serde_json::json!({ "detail": message }))
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn json_errors_have_fastapis_shape() {
        let r = json_error(StatusCode::NOT_FOUND, "nope");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"detail":"nope"}"#);
    }
}
