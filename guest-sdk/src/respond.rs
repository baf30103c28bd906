//! [`IntoResponse`]: how an endpoint's result becomes an HTTP response.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;

use crate::{Json, Response};

/// A value an endpoint may return.
pub trait IntoResponse {
    /// Turns the value into a response.
    fn into_response(self) -> Response;

    /// The JSON Schema of the response body, when it is JSON.
    fn result_schema(_generator: &mut SchemaGenerator) -> Option<Schema> {
        None
    }
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<T: Serialize + JsonSchema> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::new(200).json(&self.0)
    }

    fn result_schema(generator: &mut SchemaGenerator) -> Option<Schema> {
        Some(generator.subschema_for::<T>())
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::new(200).text(self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::new(200).text(self)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(204)
    }
}

/// `(status, value)`: `value`'s response with its status replaced.
impl<T: IntoResponse> IntoResponse for (u16, T) {
    fn into_response(self) -> Response {
        self.1.into_response().status(self.0)
    }

    fn result_schema(generator: &mut SchemaGenerator) -> Option<Schema> {
        T::result_schema(generator)
    }
}

/// `Ok` and `Err` each answer with their own response; the schema is `T`'s.
impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(value) => value.into_response(),
            Err(err) => err.into_response(),
        }
    }

    fn result_schema(generator: &mut SchemaGenerator) -> Option<Schema> {
        T::result_schema(generator)
    }
}
