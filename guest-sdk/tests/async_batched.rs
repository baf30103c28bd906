//! `async fn` handlers and batched functions, natively: both exports (the async one and
//! the synchronous one that blocks on it), the manifest, and each batch item's outcome.

// Guests import the SDK as `wasmhost`, which the macro's expansion refers to.
extern crate wasmhost_sdk as wasmhost;

use serde_json::{Value, json};
use wasmhost::{Batching, CallError, Request};

/// Counts to `n`, yielding on the way.
#[wasmhost::endpoint]
async fn count(n: u32) -> wasmhost::Json<u32> {
    let mut total = 0;
    for _ in 0..n {
        wasmhost::sleep(std::time::Duration::ZERO).await;
        total += 1;
    }
    wasmhost::Json(total)
}

#[wasmhost::function]
async fn halve(x: i64) -> Result<i64, String> {
    if x % 2 == 0 {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

#[wasmhost::function(batched(max_batch_size = 4, wait_ms = 20))]
fn lengths(words: Vec<String>, times: Vec<Option<usize>>) -> Vec<Result<usize, String>> {
    words
        .into_iter()
        .zip(times)
        .map(|(w, t)| match w.is_empty() {
            true => Err("an empty word".to_owned()),
            false => Ok(w.len() * t.unwrap_or(1)),
        })
        .collect()
}

#[wasmhost::function(batched(max_batch_size = 2, wait_ms = 0))]
async fn broken(xs: Vec<u8>) -> Vec<u8> {
    xs.into_iter().skip(1).collect()
}

/// A request body of `scale`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Numbers {
    xs: Vec<i64>,
}

/// Scales each request's body by its `by`; `by = 0` answers that request alone with a 400.
#[wasmhost::endpoint(method = "POST", batched(max_batch_size = 8, wait_ms = 5))]
async fn scale(
    numbers: Vec<wasmhost::Json<Numbers>>,
    by: Vec<i64>,
) -> Vec<Result<wasmhost::Json<Vec<i64>>, (u16, String)>> {
    wasmhost::sleep(std::time::Duration::ZERO).await;
    numbers
        .into_iter()
        .zip(by)
        .map(|(n, by)| match by {
            0 => Err((400, "by must not be 0".to_owned())),
            by => Ok(wasmhost::Json(n.0.xs.iter().map(|x| x * by).collect())),
        })
        .collect()
}

fn get(query: &str) -> Request {
    Request {
        method: "GET".into(),
        path: "/".into(),
        query: query.into(),
        headers: Vec::new(),
        body: Vec::new(),
        params: Vec::new(),
    }
}

#[test]
fn async_endpoints_answer_through_both_exports() {
    let response = wasmhost::block_on(wasmhost::handle_async("count", get("n=3")));
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"3"[..])
    );
    let response = wasmhost::handle("count", get("n=2"));
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"2"[..])
    );
    assert_eq!(wasmhost::handle("count", get("n=x")).status, 422);
}

#[test]
fn async_functions_answer_through_both_exports() {
    let out = wasmhost::block_on(wasmhost::invoke_async("halve", r#"{"args": [8]}"#.into()));
    assert_eq!(out.as_deref(), Ok("4"));
    assert_eq!(
        wasmhost::invoke("halve", r#"{"args": [3]}"#),
        Err(CallError::Failed("3 is odd".into()))
    );
}

#[test]
fn batched_functions_declare_batching_and_take_one_call_per_item() {
    let manifest = wasmhost::manifest();
    let lengths = manifest
        .functions
        .iter()
        .find(|f| f.name == "lengths")
        .unwrap();
    let batching = Batching {
        max_batch_size: 4,
        wait_ms: 20,
    };
    assert_eq!(lengths.batching, Some(batching));
    // One call's schema: a string and an optional integer, not lists.
    let schema: Value = serde_json::from_str(&lengths.args_schema).unwrap();
    assert_eq!(schema["properties"]["words"]["type"], "string", "{schema}");
    let input = json!({"batch": [
        {"args": ["four"]},
        {"args": [7]},
        {"kwargs": {"words": "", "times": 2}},
        {"args": ["ab", 3]},
    ]});
    let out = wasmhost::invoke("lengths", &input.to_string()).expect("a batch answer");
    let out: Value = serde_json::from_str(&out).unwrap();
    let outcomes = out["batch"].as_array().unwrap();
    assert_eq!(outcomes.len(), 4, "{out}");
    assert_eq!(outcomes[0], json!({"ok": 4}));
    assert_eq!(
        outcomes[1]["invalid_input"][0]["loc"],
        json!(["args", 0]),
        "{out}"
    );
    assert_eq!(outcomes[2], json!({"failed": "an empty word"}));
    assert_eq!(outcomes[3], json!({"ok": 6}));
}

#[test]
fn a_batched_function_that_drops_results_fails_the_batch() {
    let input = json!({"batch": [{"args": [1]}, {"args": [2]}]}).to_string();
    let err = wasmhost::invoke("broken", &input).expect_err("one result for two calls");
    assert!(err.to_string().contains("1 results for 2 inputs"), "{err}");
    let err = wasmhost::invoke("broken", r#"{"args": [1]}"#).expect_err("not a batch");
    assert!(err.to_string().contains("{\"batch\""), "{err}");
}

#[test]
fn a_batched_endpoint_answers_each_request_of_its_batch() {
    let manifest = wasmhost::manifest();
    let scale = manifest
        .endpoints
        .iter()
        .find(|e| e.name == "scale")
        .unwrap();
    let batching = Batching {
        max_batch_size: 8,
        wait_ms: 5,
    };
    assert_eq!(scale.batching, Some(batching));
    // One request's schema: an integer `by`, not a list of them.
    let schema: Value = serde_json::from_str(&scale.args_schema).unwrap();
    assert_eq!(schema["properties"]["by"]["type"], "integer", "{schema}");
    let item = |query: &str, body: &str| {
        json!({"method": "POST", "path": "/", "query": query,
               "headers": [["content-type", "application/json"]], "body": body.as_bytes()})
    };
    let batch = json!({"batch": [
        item("by=2", r#"{"xs": [1, 2]}"#),
        item("by=x", r#"{"xs": [1]}"#),
        item("by=0", r#"{"xs": [5]}"#),
        item("by=-1", r#"{"xs": [3]}"#),
    ]});
    let mut request = get("");
    request.method = "POST".into();
    request.body = batch.to_string().into_bytes();
    let answer = wasmhost::block_on(wasmhost::handle_async("scale", request.clone()));
    assert_eq!(answer.status, 200);
    let answer: Value = serde_json::from_slice(&answer.body).unwrap();
    let items = answer["batch"].as_array().unwrap();
    let body = |i: usize| {
        let bytes: Vec<u8> = serde_json::from_value(items[i]["body"].clone()).unwrap();
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(
        (items[0]["status"].as_u64(), body(0).as_str()),
        (Some(200), "[2,4]")
    );
    assert_eq!(items[1]["status"], 422, "{answer}");
    assert!(body(1).contains("by"), "{}", body(1));
    assert_eq!(
        (items[2]["status"].as_u64(), body(2).as_str()),
        (Some(400), "by must not be 0")
    );
    assert_eq!(
        (items[3]["status"].as_u64(), body(3).as_str()),
        (Some(200), "[-3]")
    );
    // The synchronous export answers the same; a request that is not a batch gets a 500.
    assert_eq!(wasmhost::handle("scale", request).status, 200);
    assert_eq!(wasmhost::handle("scale", get("by=2")).status, 500);
}
