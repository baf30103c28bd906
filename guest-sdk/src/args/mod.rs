//! Turning a request into typed arguments, FastAPI style, and the 422 answer when that fails.
//!
//! Named parameters come from the query string for `GET`, `DELETE` and `HEAD`; for other
//! methods from the fields of the JSON body object, falling back to the query string. A
//! [`Json`](crate::Json) parameter receives the whole body. Every failure is collected and
//! answered at once with a FastAPI-shaped `422 {"detail": [...]}`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Request, Response};

/// One entry of a 422 answer's `detail` list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Machine-readable kind, e.g. `missing`, `int_parsing`, `json_invalid`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where the value came from: `["query", name]`, `["body", name]` or `["body"]` for
    /// endpoints; `["args", index]` or `["kwargs", name]` for functions.
    pub loc: Vec<Value>,
    /// Human-readable message.
    pub msg: String,
    /// The offending input, `null` when there was none.
    pub input: Value,
    /// Extra context, e.g. the JSON parser's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

/// The body as parsed so far.
enum Body {
    Unparsed,
    Empty,
    Json(Value),
    Invalid(String),
}

/// Extracts the arguments of one call from its request, collecting every error.
pub struct Args {
    request: Request,
    from_query: bool,
    query: Map<String, Value>,
    body: Body,
    body_reported: bool,
    errors: Vec<FieldError>,
}

impl Args {
    /// Prepares to extract arguments from `request`.
    pub fn new(request: Request) -> Self {
        let from_query = ["GET", "DELETE", "HEAD"]
            .iter()
            .any(|m| request.method.eq_ignore_ascii_case(m));
        let query = parse_query(&request.query);
        Self {
            request,
            from_query,
            query,
            body: Body::Unparsed,
            body_reported: false,
            errors: Vec::new(),
        }
    }

    /// The parameter `name`: from the query, or the body's fields then the query.
    ///
    /// Returns `None` after recording an error.
    pub fn named<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        if !self.from_query
            && let Some(value) = self.body_field(name)
        {
            return match T::deserialize(&value) {
                Ok(v) => Some(v),
                Err(err) => {
                    self.reject(&err, vec!["body".into(), name.into()], value);
                    None
                }
            };
        }
        if let Some(raw) = self.query.get(name) {
            return match coerce_query::<T>(raw) {
                Ok(v) => Some(v),
                Err(err) => {
                    let raw = raw.clone();
                    self.reject(&err, vec!["query".into(), name.into()], raw);
                    None
                }
            };
        }
        let place = if self.from_query { "query" } else { "body" };
        self.missing(vec![place.into(), name.into()])
    }

    /// The whole body deserialised from JSON; an empty body counts as `null`.
    ///
    /// Returns `None` after recording an error.
    pub fn body<T: DeserializeOwned>(&mut self) -> Option<T> {
        self.parse_body();
        match &self.body {
            Body::Json(value) => match serde_json::from_value::<T>(value.clone()) {
                Ok(v) => Some(v),
                Err(err) => {
                    let value = value.clone();
                    self.reject(&err, vec!["body".into()], value);
                    None
                }
            },
            Body::Empty => self.missing(vec!["body".into()]),
            Body::Invalid(_) | Body::Unparsed => {
                self.report_body();
                None
            }
        }
    }

    /// The request back when every argument was extracted, or the 422 response.
    pub fn finish(self) -> Result<Request, Response> {
        if self.errors.is_empty() {
            Ok(self.request)
        } else {
            Err(unprocessable(&self.errors))
        }
    }

    /// The errors recorded so far.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// Parses the body once.
    fn parse_body(&mut self) {
        if !matches!(self.body, Body::Unparsed) {
            return;
        }
        self.body = if self.request.body.iter().all(u8::is_ascii_whitespace) {
            Body::Empty
        } else {
            match serde_json::from_slice(&self.request.body) {
                Ok(value) => Body::Json(value),
                Err(err) => Body::Invalid(err.to_string()),
            }
        };
    }

    /// The field `name` of the body object, recording once a body that is not an object.
    fn body_field(&mut self, name: &str) -> Option<Value> {
        self.parse_body();
        match &self.body {
            Body::Json(Value::Object(map)) => map.get(name).cloned(),
            Body::Json(Value::Null) | Body::Empty => None,
            Body::Json(_) | Body::Invalid(_) | Body::Unparsed => {
                self.report_body();
                None
            }
        }
    }

    /// Records, once, why the body cannot be used.
    fn report_body(&mut self) {
        if std::mem::replace(&mut self.body_reported, true) {
            return;
        }
        let error = match &self.body {
            Body::Invalid(parse_error) => FieldError {
                kind: "json_invalid",
                loc: vec!["body".into()],
                msg: "JSON decode error".into(),
                input: Value::Null,
                ctx: Some(serde_json::json!({ "error": parse_error })),
            },
            Body::Json(value) => FieldError {
                kind: "model_attributes_type",
                loc: vec!["body".into()],
                msg: "Input should be a valid dictionary or object to extract fields from".into(),
                input: value.clone(),
                ctx: None,
            },
            Body::Empty | Body::Unparsed => return,
        };
        self.errors.push(error);
    }

    /// Builds the value of an absent parameter from `null`, or records it missing.
    fn missing<T: DeserializeOwned>(&mut self, loc: Vec<Value>) -> Option<T> {
        match serde_json::from_value::<T>(Value::Null) {
            Ok(v) => Some(v),
            Err(_) => {
                self.errors.push(FieldError {
                    kind: "missing",
                    loc,
                    msg: "Field required".into(),
                    input: Value::Null,
                    ctx: None,
                });
                None
            }
        }
    }

    /// Records a value that did not deserialise.
    fn reject(&mut self, err: &serde_json::Error, loc: Vec<Value>, input: Value) {
        let msg = err.to_string();
        self.errors.push(FieldError {
            kind: error_kind(&msg),
            loc,
            msg,
            input,
            ctx: None,
        });
    }
}

/// The 422 response listing `errors` as FastAPI does.
pub fn unprocessable(errors: &[FieldError]) -> Response {
    /// The body of a 422, fields in FastAPI's order.
    #[derive(Serialize)]
    struct Unprocessable<'a> {
        detail: &'a [FieldError],
    }
    Response::new(422).json(&Unprocessable { detail: errors })
}

/// The path parameter `name` (raw text `raw`, absent as `None`) as a `T`, or a 422.
pub fn path_param<T: DeserializeOwned>(name: &str, raw: Option<&str>) -> Result<T, Response> {
    let loc = vec![Value::from("path"), Value::from(name)];
    let Some(raw) = raw else {
        return Err(unprocessable(&[FieldError {
            kind: "missing",
            loc,
            msg: "Field required".into(),
            input: Value::Null,
            ctx: None,
        }]));
    };
    let value = Value::String(raw.to_owned());
    coerce_query::<T>(&value).map_err(|err| {
        let msg = err.to_string();
        unprocessable(&[FieldError {
            kind: error_kind(&msg),
            loc,
            msg,
            input: value.clone(),
            ctx: None,
        }])
    })
}

/// Percent-decodes a query string; a repeated key gives an array of its values.
pub fn parse_query(query: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = Value::String(value.into_owned());
        match map.get_mut(key.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                map.insert(key.into_owned(), value);
            }
        }
    }
    map
}

/// Deserialises a query value (a string, or an array of strings for a repeated key).
///
/// Tries the text as it is, then read as JSON (`"5"` → `5`), then both wrapped in a
/// one-element array so a single value fills a list, then as a boolean alias (`yes`, `1`).
/// The error reported is the one of the reading as JSON when that differs from the plain
/// text, else the plain text's.
pub fn coerce_query<T: DeserializeOwned>(raw: &Value) -> Result<T, serde_json::Error> {
    // Read from the value in place: most arguments are taken as they came, and then no
    // copy is made and no JSON reading of the text is tried.
    let first = match T::deserialize(raw) {
        Ok(v) => return Ok(v),
        Err(err) => err,
    };
    let lenient = lenient(raw);
    let best = if lenient == *raw {
        first
    } else {
        match T::deserialize(&lenient) {
            Ok(v) => return Ok(v),
            Err(err) => err,
        }
    };
    if !raw.is_array() {
        for candidate in [raw, &lenient] {
            if let Ok(v) = T::deserialize(&Value::Array(vec![candidate.clone()])) {
                return Ok(v);
            }
        }
    }
    if let Some(flag) = bool_alias(raw)
        && let Ok(v) = T::deserialize(&flag)
    {
        return Ok(v);
    }
    Err(best)
}

/// The boolean that pydantic also reads from `1`/`0`, `yes`/`no`, `on`/`off`, `t`/`f`, `y`/`n`.
fn bool_alias(raw: &Value) -> Option<Value> {
    let text = raw.as_str()?.to_ascii_lowercase();
    match text.as_str() {
        "1" | "yes" | "on" | "t" | "y" => Some(Value::Bool(true)),
        "0" | "no" | "off" | "f" | "n" => Some(Value::Bool(false)),
        _ => None,
    }
}

/// A query string read as JSON where it is valid JSON, element-wise for arrays.
fn lenient(raw: &Value) -> Value {
    match raw {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| raw.clone()),
        Value::Array(items) => Value::Array(items.iter().map(lenient).collect()),
        other => other.clone(),
    }
}

/// A FastAPI-like error kind guessed from a serde message's `expected ...` part.
pub(crate) fn error_kind(msg: &str) -> &'static str {
    if msg.starts_with("missing field") {
        return "missing";
    }
    if msg.starts_with("unknown variant") {
        return "enum";
    }
    if msg.starts_with("unknown field") {
        return "extra_forbidden";
    }
    let expected = msg.rsplit_once("expected ").map_or("", |(_, e)| e);
    let expected = expected.trim_start_matches("a ").trim_start_matches("an ");
    match expected {
        e if e.starts_with("boolean") => "bool_parsing",
        e if e.starts_with('f') && e[1..].starts_with(|c: char| c.is_ascii_digit()) => {
            "float_parsing"
        }
        e if (e.starts_with('i') || e.starts_with('u'))
            && (e[1..].starts_with(|c: char| c.is_ascii_digit()) || e[1..].starts_with("size")) =>
        {
            "int_parsing"
        }
        e if e.starts_with("integer") => "int_parsing",
        e if e.starts_with("string") || e.starts_with("borrowed string") => "string_type",
        e if e.starts_with("char") || e.starts_with("character") => "string_type",
        e if e.starts_with("sequence") || e.starts_with("tuple") => "list_type",
        e if e.starts_with("map") || e.starts_with("struct") => "model_type",
        _ => "parsing",
    }
}

#[cfg(test)]
mod tests;
