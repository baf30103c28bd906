//! Unit tests of argument extraction.

use super::*;
use serde::Deserialize;
use serde_json::json;

fn get(query: &str) -> Args {
    Args::new(Request {
        params: Vec::new(),
        method: "GET".into(),
        path: "/".into(),
        query: query.into(),
        ..Request::default()
    })
}

fn post(query: &str, body: &str) -> Args {
    Args::new(Request {
        params: Vec::new(),
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
fn query_bool_aliases() {
    let mut args = get("a=1&b=no&c=ON&d=0&n=1");
    assert_eq!(args.named::<bool>("a"), Some(true));
    assert_eq!(args.named::<bool>("b"), Some(false));
    assert_eq!(args.named::<Option<bool>>("c"), Some(Some(true)));
    assert_eq!(args.named::<bool>("d"), Some(false));
    assert_eq!(args.named::<i64>("n"), Some(1));
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
        params: Vec::new(),
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
