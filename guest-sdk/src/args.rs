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
    /// Where the value came from: `["query", name]`, `["body", name]` or `["body"]`.
    pub loc: Vec<String>,
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
            return match serde_json::from_value::<T>(value.clone()) {
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
    fn missing<T: DeserializeOwned>(&mut self, loc: Vec<String>) -> Option<T> {
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
    fn reject(&mut self, err: &serde_json::Error, loc: Vec<String>, input: Value) {
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
/// one-element array so a single value fills a list. The error reported is the one of the
/// reading as JSON when that differs from the plain text, else the plain text's.
pub fn coerce_query<T: DeserializeOwned>(raw: &Value) -> Result<T, serde_json::Error> {
    let lenient = lenient(raw);
    let first = match serde_json::from_value::<T>(raw.clone()) {
        Ok(v) => return Ok(v),
        Err(err) => err,
    };
    let best = if lenient == *raw {
        first
    } else {
        match serde_json::from_value::<T>(lenient.clone()) {
            Ok(v) => return Ok(v),
            Err(err) => err,
        }
    };
    if !raw.is_array() {
        for candidate in [raw, &lenient] {
            if let Ok(v) = serde_json::from_value::<T>(Value::Array(vec![candidate.clone()])) {
                return Ok(v);
            }
        }
    }
    Err(best)
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
fn error_kind(msg: &str) -> &'static str {
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
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn get(query: &str) -> Args {
        Args::new(Request {
            method: "GET".into(),
            path: "/".into(),
            query: query.into(),
            ..Request::default()
        })
    }

    fn post(query: &str, body: &str) -> Args {
        Args::new(Request {
            method: "POST".into(),
            path: "/".into(),
            query: query.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        })
    }

    fn detail(args: Args) -> Value {
        let response = args.finish().expect_err("expected a 422");
        assert_eq!(response.status, 422);
        assert_eq!(
            response.headers,
            vec![("content-type".into(), "application/json".into())]
        );
        let body: Value = serde_json::from_slice(&response.body).expect("JSON body");
        body["detail"].clone()
    }

    #[test]
    fn query_int_and_bool_are_coerced() {
        let mut args = get("a=5&b=-7&flag=true&x=1.5");
        assert_eq!(args.named::<i64>("a"), Some(5));
        assert_eq!(args.named::<i32>("b"), Some(-7));
        assert_eq!(args.named::<bool>("flag"), Some(true));
        assert_eq!(args.named::<f64>("x"), Some(1.5));
        assert!(args.finish().is_ok());
    }

    #[test]
    fn query_strings_stay_strings() {
        let mut args = get("name=5&other=true&q=a%20b+c");
        assert_eq!(args.named::<String>("name").as_deref(), Some("5"));
        assert_eq!(
            args.named::<Option<String>>("other"),
            Some(Some("true".into()))
        );
        assert_eq!(args.named::<String>("q").as_deref(), Some("a b c"));
    }

    #[test]
    fn query_option_missing_is_none() {
        let mut args = get("");
        assert_eq!(args.named::<Option<String>>("name"), Some(None));
        assert_eq!(args.named::<Option<i64>>("n"), Some(None));
        assert!(args.finish().is_ok());
    }

    #[test]
    fn query_option_present_is_some() {
        let mut args = get("n=3");
        assert_eq!(args.named::<Option<i64>>("n"), Some(Some(3)));
    }

    #[test]
    fn query_repeated_keys_give_an_array() {
        let mut args = get("n=1&n=2&n=3&s=a&s=b");
        assert_eq!(args.named::<Vec<i64>>("n"), Some(vec![1, 2, 3]));
        assert_eq!(
            args.named::<Vec<String>>("s"),
            Some(vec!["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn query_single_value_fills_a_list() {
        let mut args = get("n=4&s=x");
        assert_eq!(args.named::<Vec<i64>>("n"), Some(vec![4]));
        assert_eq!(args.named::<Vec<String>>("s"), Some(vec!["x".to_string()]));
    }

    #[test]
    fn missing_required_field() {
        let mut args = get("");
        assert_eq!(args.named::<i64>("a"), None);
        assert_eq!(
            detail(args),
            json!([{"type": "missing", "loc": ["query", "a"], "msg": "Field required", "input": null}])
        );
    }

    #[test]
    fn wrong_type_has_message_and_loc() {
        let mut args = get("a=abc&b=2.5&c=maybe");
        assert_eq!(args.named::<i64>("a"), None);
        assert_eq!(args.named::<i64>("b"), None);
        assert_eq!(args.named::<bool>("c"), None);
        assert_eq!(
            detail(args),
            json!([
                {"type": "int_parsing", "loc": ["query", "a"],
                 "msg": "invalid type: string \"abc\", expected i64", "input": "abc"},
                {"type": "int_parsing", "loc": ["query", "b"],
                 "msg": "invalid type: floating point `2.5`, expected i64", "input": "2.5"},
                {"type": "bool_parsing", "loc": ["query", "c"],
                 "msg": "invalid type: string \"maybe\", expected a boolean", "input": "maybe"},
            ])
        );
    }

    #[test]
    fn all_errors_are_collected() {
        let mut args = get("b=x");
        assert_eq!(args.named::<i64>("a"), None);
        assert_eq!(args.named::<i64>("b"), None);
        assert_eq!(args.named::<Option<i64>>("c"), Some(None));
        let detail = detail(args);
        assert_eq!(detail.as_array().map(Vec::len), Some(2));
        assert_eq!(detail[0]["loc"], json!(["query", "a"]));
        assert_eq!(detail[1]["loc"], json!(["query", "b"]));
    }

    #[test]
    fn repeated_key_with_a_bad_element() {
        let mut args = get("n=1&n=x");
        assert_eq!(args.named::<Vec<i64>>("n"), None);
        let detail = detail(args);
        assert_eq!(detail[0]["input"], json!(["1", "x"]));
        assert_eq!(detail[0]["type"], "int_parsing");
    }

    #[test]
    fn body_fields_for_post() {
        let mut args = post("", r#"{"a": 1, "name": "x", "tags": ["p", "q"]}"#);
        assert_eq!(args.named::<i64>("a"), Some(1));
        assert_eq!(args.named::<String>("name").as_deref(), Some("x"));
        assert_eq!(args.named::<Vec<String>>("tags").map(|t| t.len()), Some(2));
        assert_eq!(args.named::<Option<bool>>("absent"), Some(None));
        assert!(args.finish().is_ok());
    }

    #[test]
    fn body_fields_fall_back_to_the_query() {
        let mut args = post("b=2&a=9", r#"{"a": 1}"#);
        assert_eq!(args.named::<i64>("a"), Some(1));
        assert_eq!(args.named::<i64>("b"), Some(2));
        let mut empty = post("b=2", "");
        assert_eq!(empty.named::<i64>("b"), Some(2));
        assert!(empty.finish().is_ok());
    }

    #[test]
    fn body_field_errors_are_typed_not_coerced() {
        let mut args = post("", r#"{"a": "5"}"#);
        assert_eq!(args.named::<i64>("a"), None);
        assert_eq!(args.named::<i64>("b"), None);
        assert_eq!(
            detail(args),
            json!([
                {"type": "int_parsing", "loc": ["body", "a"],
                 "msg": "invalid type: string \"5\", expected i64", "input": "5"},
                {"type": "missing", "loc": ["body", "b"], "msg": "Field required", "input": null},
            ])
        );
    }

    #[test]
    fn body_that_is_not_an_object() {
        let mut args = post("", "[1, 2]");
        assert_eq!(args.named::<i64>("a"), None);
        assert_eq!(args.named::<i64>("b"), None);
        let detail = detail(args);
        assert_eq!(detail[0]["type"], "model_attributes_type");
        assert_eq!(detail[0]["input"], json!([1, 2]));
        assert_eq!(detail.as_array().map(Vec::len), Some(3));
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Item {
        name: String,
        count: u32,
    }

    #[test]
    fn whole_body_json_param() {
        let mut args = post("", r#"{"name": "n", "count": 2}"#);
        let item = args
            .body::<crate::Json<Item>>()
            .map(crate::Json::into_inner);
        assert_eq!(
            item,
            Some(Item {
                name: "n".into(),
                count: 2
            })
        );
        let mut any = post("", "[1, \"two\"]");
        assert_eq!(any.body::<Value>(), Some(json!([1, "two"])));
        assert!(any.finish().is_ok());
    }

    #[test]
    fn whole_body_errors() {
        let mut args = post("", r#"{"name": "n"}"#);
        assert!(args.body::<Item>().is_none());
        assert_eq!(
            detail(args),
            json!([{"type": "missing", "loc": ["body"], "msg": "missing field `count`",
                    "input": {"name": "n"}}])
        );

        let mut empty = post("", "  ");
        assert!(empty.body::<Item>().is_none());
        assert_eq!(detail(empty)[0]["type"], "missing");

        let mut optional = post("", "");
        assert_eq!(optional.body::<Option<Item>>(), Some(None));
    }

    #[test]
    fn non_json_body() {
        let mut args = post("", "name=n&count=2");
        assert!(args.body::<Item>().is_none());
        assert_eq!(args.named::<i64>("count"), None);
        let detail = detail(args);
        assert_eq!(detail.as_array().map(Vec::len), Some(2), "{detail}");
        assert_eq!(detail[0]["type"], "json_invalid");
        assert_eq!(detail[0]["loc"], json!(["body"]));
        assert_eq!(detail[0]["msg"], "JSON decode error");
        assert!(detail[0]["ctx"]["error"].is_string());
        assert_eq!(detail[1]["loc"], json!(["body", "count"]));
    }

    #[test]
    fn non_json_body_is_rejected_for_named_params_but_ignored_for_get() {
        let mut args = post("a=1", "not json");
        assert_eq!(args.named::<i64>("a"), Some(1));
        assert_eq!(detail(args)[0]["type"], "json_invalid");
        let mut get = Args::new(Request {
            method: "GET".into(),
            query: "a=1".into(),
            body: b"not json".to_vec(),
            ..Request::default()
        });
        assert_eq!(get.named::<i64>("a"), Some(1));
        assert!(get.finish().is_ok());
    }

    #[test]
    fn error_kinds() {
        assert_eq!(
            error_kind("invalid type: string \"a\", expected u8"),
            "int_parsing"
        );
        assert_eq!(
            error_kind("invalid value: integer `300`, expected u8"),
            "int_parsing"
        );
        assert_eq!(
            error_kind("invalid type: string \"a\", expected usize"),
            "int_parsing"
        );
        assert_eq!(
            error_kind("invalid type: string \"a\", expected f32"),
            "float_parsing"
        );
        assert_eq!(
            error_kind("invalid type: integer `1`, expected a string"),
            "string_type"
        );
        assert_eq!(
            error_kind("invalid type: string \"a\", expected a sequence"),
            "list_type"
        );
        assert_eq!(
            error_kind("unknown variant `x`, expected `a` or `b`"),
            "enum"
        );
        assert_eq!(error_kind("something else"), "parsing");
    }
}
