//! The attribute macro end to end, natively: registration, manifest and dispatch.

// Guests import the SDK as `wasmhost`, which the macro's expansion refers to.
extern crate wasmhost_sdk as wasmhost;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wasmhost::{Json, Request, Response};

#[derive(Serialize, JsonSchema)]
struct Greeting {
    message: String,
}

/// Greets someone.
///
/// Second paragraph.
#[wasmhost::endpoint(method = "get", docs = true)]
fn hello(name: Option<String>) -> Json<Greeting> {
    let name = name.as_deref().unwrap_or("World");
    Json(Greeting {
        message: format!("Hello, {name}!"),
    })
}

#[derive(Deserialize, Serialize, JsonSchema)]
struct Item {
    name: String,
    count: u32,
}

#[wasmhost::endpoint(
    method = "POST",
    label = "items-api",
    requires_proxy_auth,
    custom_domains = ["items.example.com", "i.example.com"],
    timeout = "1500ms",
    memory = 64,
    gpu = "any"
)]
fn create(item: Json<Item>, dry_run: Option<bool>, req: Request) -> (u16, Json<Value>) {
    let status = if dry_run == Some(true) { 200 } else { 201 };
    (
        status,
        Json(json!({"name": item.name, "count": item.count, "path": req.path})),
    )
}

#[wasmhost::endpoint(method = "PUT")]
fn add(a: i64, b: i64) -> Result<Json<i64>, Response> {
    a.checked_add(b)
        .map(Json)
        .ok_or_else(|| Response::error(400, "overflow"))
}

#[wasmhost::endpoint]
fn nothing() {}

#[wasmhost::endpoint]
fn text(first: Request, second: Request) -> String {
    format!("{} {}", first.query, second.query)
}

fn request(method: &str, path: &str, query: &str, body: &str) -> Request {
    Request {
        params: Vec::new(),
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn json_body(response: &Response) -> Value {
    serde_json::from_slice(&response.body).expect("a JSON body")
}

#[test]
fn functions_stay_callable() {
    assert_eq!(hello(Some("x".into())).0.message, "Hello, x!");
    assert!(add(1, 2).is_ok());
}

#[test]
fn manifest_describes_every_endpoint() {
    let manifest = wasmhost::manifest();
    assert_eq!(manifest.app, "wasmhost-sdk");
    assert_eq!(manifest.sdk_version, env!("CARGO_PKG_VERSION"));
    let names: Vec<_> = manifest.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["add", "create", "hello", "nothing", "text"]);

    let hello = &manifest.endpoints[2];
    assert_eq!(hello.method, "GET");
    assert!(hello.docs);
    assert!(!hello.requires_proxy_auth);
    assert_eq!(
        hello.summary.as_deref(),
        Some("Greets someone.\n\nSecond paragraph.")
    );
    assert_eq!((hello.timeout_ms, hello.memory_mib), (None, None));
    assert_eq!(hello.gpu, None);
    let args: Value = serde_json::from_str(&hello.args_schema).expect("JSON");
    assert_eq!(
        args,
        json!({"type": "object", "properties": {"name": {"type": ["string", "null"]}},
               "required": []})
    );
    let result: Value =
        serde_json::from_str(hello.result_schema.as_deref().expect("schema")).expect("JSON");
    assert_eq!(result["$ref"], "#/$defs/Greeting");
    assert_eq!(result["$defs"]["Greeting"]["required"], json!(["message"]));

    let create = &manifest.endpoints[1];
    assert_eq!(create.method, "POST");
    assert_eq!(create.label.as_deref(), Some("items-api"));
    assert!(create.requires_proxy_auth);
    assert!(!create.docs);
    assert_eq!(
        create.custom_domains,
        ["items.example.com", "i.example.com"]
    );
    assert_eq!(create.timeout_ms, Some(1500));
    assert_eq!(create.memory_mib, Some(64));
    assert_eq!(create.gpu.as_deref(), Some("any"));
    assert_eq!(create.summary, None);
    let args: Value = serde_json::from_str(&create.args_schema).expect("JSON");
    assert_eq!(args["x-wasmhost-body"], "item");
    assert_eq!(args["required"], json!(["item"]));
    let order = (
        create.args_schema.find("\"item\":"),
        create.args_schema.find("\"dry_run\":"),
    );
    assert!(order.0 < order.1, "parameter order: {}", create.args_schema);
    assert!(args["$defs"]["Item"].is_object());

    let nothing = &manifest.endpoints[3];
    assert_eq!(nothing.result_schema, None);
    let args: Value = serde_json::from_str(&nothing.args_schema).expect("JSON");
    assert_eq!(
        args,
        json!({"type": "object", "properties": {}, "required": []})
    );
}

#[test]
fn handle_get_with_query() {
    let response = wasmhost::handle("hello", request("GET", "/", "name=Ann", ""));
    assert_eq!(response.status, 200);
    assert_eq!(json_body(&response), json!({"message": "Hello, Ann!"}));
    let response = wasmhost::handle("hello", request("GET", "/", "", ""));
    assert_eq!(json_body(&response), json!({"message": "Hello, World!"}));
}

#[test]
fn handle_body_and_request_params() {
    let body = r#"{"name": "pen", "count": 3}"#;
    let response = wasmhost::handle("create", request("POST", "/x", "dry_run=true", body));
    assert_eq!(response.status, 200);
    assert_eq!(
        json_body(&response),
        json!({"name": "pen", "count": 3, "path": "/x"})
    );
    let response = wasmhost::handle("create", request("POST", "/", "", body));
    assert_eq!(response.status, 201);

    let response = wasmhost::handle("create", request("POST", "/", "", "{"));
    assert_eq!(response.status, 422);
    assert_eq!(json_body(&response)["detail"][0]["type"], "json_invalid");
}

#[test]
fn handle_422_and_result_errors() {
    let response = wasmhost::handle("add", request("PUT", "/", "", r#"{"a": "x"}"#));
    assert_eq!(response.status, 422);
    let detail = &json_body(&response)["detail"];
    assert_eq!(detail[0]["loc"], json!(["body", "a"]));
    assert_eq!(detail[1]["loc"], json!(["body", "b"]));
    assert_eq!(detail[1]["type"], "missing");

    let response = wasmhost::handle("add", request("PUT", "/", "b=2", r#"{"a": 40}"#));
    assert_eq!((response.status, json_body(&response)), (200, json!(42)));

    let overflow = format!(r#"{{"a": {}, "b": 1}}"#, i64::MAX);
    let response = wasmhost::handle("add", request("PUT", "/", "", &overflow));
    assert_eq!(response.status, 400);
    assert_eq!(json_body(&response), json!({"detail": "overflow"}));
}

#[test]
fn handle_unit_text_and_unknown() {
    let response = wasmhost::handle("nothing", request("GET", "/", "", ""));
    assert_eq!((response.status, response.body.len()), (204, 0));

    let response = wasmhost::handle("text", request("GET", "/", "q=1", ""));
    assert_eq!(response.body, b"q=1 q=1");
    assert_eq!(
        response.headers,
        [(
            "content-type".to_string(),
            "text/plain; charset=utf-8".to_string()
        )]
    );

    let response = wasmhost::handle("missing", request("GET", "/", "", ""));
    assert_eq!(response.status, 404);
}
