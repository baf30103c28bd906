//! The request an endpoint receives and the response it returns.

use serde::Serialize;

/// HTTP header fields in order, as `(name, value)` pairs.
pub type Headers = Vec<(String, String)>;

/// A whole HTTP request as the endpoint sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// Path below the endpoint's root, always starting with `/`.
    pub path: String,
    /// Raw query string without the leading `?` (empty when absent).
    pub query: String,
    /// Header fields in order; the host lower-cases their names.
    pub headers: Headers,
    /// The raw body.
    pub body: Vec<u8>,
    /// Path parameters matched by an app's router (`/items/{item_id}`), in order.
    pub params: Vec<(String, String)>,
}

impl Request {
    /// The path parameter `name` as a `T` (`"42"` → `42`); a FastAPI-style 422 response
    /// when it does not parse, so handlers can use `?`.
    pub fn param<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, Response> {
        let raw = self
            .params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        crate::args::path_param(name, raw)
    }

    /// The parts of a `multipart/form-data` body, or a 400 response.
    pub fn multipart(&self) -> Result<Vec<crate::multipart::Part>, Response> {
        crate::multipart::parse(self)
    }

    /// The value of the first header named `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The percent-decoded `(key, value)` pairs of the query string.
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        form_urlencoded::parse(self.query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
    }

    /// The body deserialised from JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    /// The body as UTF-8 text, if it is valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// A whole HTTP response, built with [`Response::new`] and its builder methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields in order.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
}

impl Default for Response {
    fn default() -> Self {
        Self::new(200)
    }
}

impl Response {
    /// An empty response with the given status.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header field; the name is lower-cased.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let mut name = name.into();
        name.make_ascii_lowercase();
        self.headers.push((name, value.into()));
        self
    }

    /// Replaces every header field named `name` by one with `value`.
    #[must_use]
    pub fn set_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.header(name, value)
    }

    /// Sets the status code.
    #[must_use]
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sets the body to raw bytes.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON with `content-type: application/json`.
    ///
    /// If `value` cannot be serialised the response becomes a 500 with a JSON `detail`.
    #[must_use]
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => self
                .set_header("content-type", "application/json")
                .body(body),
            Err(err) => Self::error(500, format!("failed to serialise the response: {err}")),
        }
    }

    /// Sets the body to `text` with `content-type: text/plain; charset=utf-8`.
    #[must_use]
    pub fn text(self, text: impl Into<String>) -> Self {
        self.set_header("content-type", "text/plain; charset=utf-8")
            .body(text.into())
    }

    /// A JSON error response `{"detail": detail}` with the given status.
    pub fn error(status: u16, detail: impl Into<String>) -> Self {
        Self::new(status).json(&serde_json::json!({ "detail": detail.into() }))
    }
}
