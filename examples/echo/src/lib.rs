//! Echoes a JSON body: `POST {"a": 1}` → `{"received": {"a": 1}}`.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use wasmhost::Json;

/// What was received.
#[derive(Serialize, JsonSchema)]
struct Echo {
    /// The request body, as sent.
    received: Value,
}

/// Returns the JSON body it was sent.
#[wasmhost::endpoint(method = "POST")]
fn echo(body: Json<Value>) -> Json<Echo> {
    Json(Echo { received: body.0 })
}
