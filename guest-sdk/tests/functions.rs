//! The function attribute end to end, natively: registration, manifest and calls.

// Guests import the SDK as `wasmhost`, which the macro's expansion refers to.
extern crate wasmhost_sdk as wasmhost;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wasmhost::functions::{self, FunctionCall};
use wasmhost::{CallError, RetryPolicy, VolumeMount};

/// Squares `x`.
#[wasmhost::function]
fn square(x: i64) -> i64 {
    x * x
}

#[derive(Deserialize, Serialize, JsonSchema)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Serialize, JsonSchema)]
struct Moved {
    point: Point,
    label: Option<String>,
}

#[wasmhost::function(
    retries = 3,
    timeout = "30s",
    memory = 64,
    schedule = "cron(0 9 * * *, Europe/Paris)",
    secrets = ["db", "mail"],
    volumes = ["notes:/data", "cache:/var/cache"]
)]
fn shift(point: Point, by: i32, label: Option<String>) -> Moved {
    Moved {
        point: Point {
            x: point.x + by,
            y: point.y + by,
        },
        label,
    }
}

#[wasmhost::function(retries(max = 2, backoff = 1.5, initial_delay = "100ms", max_delay = "1s"))]
fn divide(a: i64, b: i64) -> Result<i64, String> {
    a.checked_div(b)
        .ok_or_else(|| format!("cannot divide {a} by {b}"))
}

#[wasmhost::function(retries(max = 1), schedule = "period(5m)")]
fn tick() {}

#[wasmhost::function(timeout = "1s")]
fn read(r#type: String) -> std::io::Result<String> {
    Err(std::io::Error::other(format!("no {type}")))
}

#[wasmhost::function]
fn pair(mut a: Vec<u8>, b: Option<Value>) -> Value {
    a.push(0);
    json!({"a": a, "b": b})
}

fn call(name: &str, input: Value) -> Result<Value, CallError> {
    wasmhost::invoke(name, &input.to_string())
        .map(|json| serde_json::from_str(&json).expect("the result is JSON"))
}

fn invalid(result: Result<Value, CallError>) -> Value {
    match result {
        Err(CallError::InvalidInput(detail)) => serde_json::from_str(&detail).expect("JSON"),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn functions_stay_callable() {
    assert_eq!(square(3), 9);
    assert_eq!(divide(6, 3), Ok(2));
    tick();
}

#[test]
fn manifest_lists_functions_sorted() {
    let manifest = wasmhost::manifest();
    assert_eq!(manifest.app, "wasmhost-sdk");
    assert!(manifest.endpoints.is_empty());
    let names: Vec<_> = manifest.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["divide", "pair", "read", "shift", "square", "tick"]);

    let square = &manifest.functions[4];
    assert_eq!(square.summary.as_deref(), Some("Squares `x`."));
    assert_eq!(square.params, ["x"]);
    assert_eq!(
        serde_json::from_str::<Value>(&square.args_schema).expect("JSON"),
        json!({"type": "object", "properties": {"x": {"type": "integer", "format": "int64"}},
               "required": ["x"]})
    );
    assert_eq!(
        serde_json::from_str::<Value>(square.result_schema.as_deref().expect("schema"))
            .expect("JSON"),
        json!({"type": "integer", "format": "int64"})
    );
    assert_eq!(square.retries, None);
    assert_eq!((square.timeout_ms, square.memory_mib), (None, None));
    assert_eq!(square.schedule, None);
    assert!(square.secrets.is_empty() && square.volumes.is_empty());

    let shift = &manifest.functions[3];
    assert_eq!(shift.summary, None);
    assert_eq!(shift.params, ["point", "by", "label"]);
    assert_eq!(shift.retries, Some(RetryPolicy::new(3)));
    assert_eq!(
        shift.retries,
        Some(RetryPolicy {
            max_retries: 3,
            backoff_coefficient: 2.0,
            initial_delay_ms: 1000,
            max_delay_ms: 60_000
        })
    );
    assert_eq!(shift.timeout_ms, Some(30_000));
    assert_eq!(shift.memory_mib, Some(64));
    assert_eq!(
        shift.schedule.as_deref(),
        Some("cron(0 9 * * *, Europe/Paris)")
    );
    assert_eq!(shift.secrets, ["db", "mail"]);
    assert_eq!(
        shift.volumes,
        [
            VolumeMount {
                volume: "notes".into(),
                path: "/data".into()
            },
            VolumeMount {
                volume: "cache".into(),
                path: "/var/cache".into()
            },
        ]
    );
    let args: Value = serde_json::from_str(&shift.args_schema).expect("JSON");
    assert_eq!(args["required"], json!(["point", "by"]));
    assert_eq!(
        args["properties"]["point"],
        json!({"$ref": "#/$defs/Point"})
    );
    assert!(args["$defs"]["Point"].is_object());
    let result: Value =
        serde_json::from_str(shift.result_schema.as_deref().expect("schema")).expect("JSON");
    assert_eq!(result["$ref"], "#/$defs/Moved");
    assert!(result["$defs"]["Point"].is_object());

    let divide = &manifest.functions[0];
    assert_eq!(
        divide.retries,
        Some(RetryPolicy {
            max_retries: 2,
            backoff_coefficient: 1.5,
            initial_delay_ms: 100,
            max_delay_ms: 1000
        })
    );
    // The schema of `Result<T, E>` is `T`'s.
    assert_eq!(
        serde_json::from_str::<Value>(divide.result_schema.as_deref().expect("schema"))
            .expect("JSON"),
        json!({"type": "integer", "format": "int64"})
    );

    let tick = &manifest.functions[5];
    assert_eq!(tick.retries, Some(RetryPolicy::new(1)));
    assert_eq!(tick.schedule.as_deref(), Some("period(5m)"));
    assert!(tick.params.is_empty());
    assert_eq!(tick.result_schema.as_deref(), Some(r#"{"type":"null"}"#));

    let read = &manifest.functions[2];
    assert_eq!(read.params, ["type"]);
    assert_eq!(read.timeout_ms, Some(1000));
}

#[test]
fn calls_by_position_and_name() {
    assert_eq!(call("square", json!({"args": [7]})), Ok(json!(49)));
    assert_eq!(call("square", json!({"kwargs": {"x": 8}})), Ok(json!(64)));
    assert_eq!(
        call(
            "shift",
            json!({"args": [{"x": 1, "y": 2}], "kwargs": {"by": 10}})
        ),
        Ok(json!({"point": {"x": 11, "y": 12}, "label": null}))
    );
    assert_eq!(
        call("shift", json!({"args": [{"x": 0, "y": 0}, 1, "p"]})),
        Ok(json!({"point": {"x": 1, "y": 1}, "label": "p"}))
    );
    assert_eq!(call("tick", json!({})), Ok(Value::Null));
    assert_eq!(wasmhost::invoke("tick", ""), Ok("null".into()));
    assert_eq!(
        call("pair", json!({"args": [[1]]})),
        Ok(json!({"a": [1, 0], "b": null}))
    );
}

#[test]
fn errors_are_failed_calls() {
    assert_eq!(call("divide", json!({"args": [6, 3]})), Ok(json!(2)));
    assert_eq!(
        call("divide", json!({"args": [1, 0]})),
        Err(CallError::Failed("cannot divide 1 by 0".into()))
    );
    assert_eq!(
        call("read", json!({"kwargs": {"type": "x"}})),
        Err(CallError::Failed("no x".into()))
    );
    assert_eq!(
        wasmhost::invoke("nope", "{}"),
        Err(CallError::Failed("no function named `nope`".into()))
    );
}

#[test]
fn bad_input_lists_every_error() {
    let detail = invalid(call(
        "shift",
        json!({"args": [{"x": 1}], "kwargs": {"point": {}, "colour": "red"}}),
    ));
    assert_eq!(
        detail,
        json!([
            {"type": "unexpected_keyword_argument", "loc": ["kwargs", "colour"],
             "msg": "Unexpected keyword argument; expected `point`, `by`, `label`",
             "input": "red"},
            {"type": "multiple_argument_values", "loc": ["kwargs", "point"],
             "msg": "Got multiple values for argument `point`: by position and by name",
             "input": {}},
            {"type": "missing", "loc": ["kwargs", "by"], "msg": "Field required", "input": null},
        ])
    );

    let detail = invalid(call("square", json!({"args": ["7", 8]})));
    assert_eq!(detail[0]["type"], "unexpected_positional_argument");
    assert_eq!(detail[0]["loc"], json!(["args", 1]));
    assert_eq!(
        detail[1],
        json!({"type": "int_parsing", "loc": ["args", 0],
               "msg": "invalid type: string \"7\", expected i64", "input": "7"})
    );

    let detail = invalid(call("square", json!({"x": 7})));
    assert_eq!(detail.as_array().map(Vec::len), Some(1));
    assert_eq!(detail[0]["type"], "extra_forbidden");
    assert_eq!(detail[0]["loc"], json!(["x"]));

    let detail = invalid(wasmhost::invoke("square", "{").map(|_| Value::Null));
    assert_eq!(detail[0]["type"], "json_invalid");
}

#[test]
fn guest_calls_need_a_host() {
    assert_eq!(
        functions::spawn("square", (7,)),
        Err(functions::Error::NotInGuest)
    );
    assert_eq!(
        functions::call::<i64>("square", json!({"x": 7})),
        Err(functions::Error::NotInGuest)
    );
    let call = FunctionCall::from_id("fc-123");
    assert_eq!(call.id(), "fc-123");
    assert_eq!(
        call.get::<i64>(Duration::from_millis(10)),
        Err(functions::Error::NotInGuest)
    );
    assert!(
        functions::Error::NotInGuest
            .to_string()
            .contains("only inside a wasmhost guest")
    );
}
