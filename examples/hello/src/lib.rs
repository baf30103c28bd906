//! A greeting endpoint: `GET /?name=Ann` → `{"message": "Hello, Ann!"}`.

use schemars::JsonSchema;
use serde::Serialize;
use wasmhost::Json;

/// A greeting.
#[derive(Serialize, JsonSchema)]
struct Greeting {
    /// The greeting text.
    message: String,
}

/// Greets `name`, or the World.
#[wasmhost::endpoint(method = "GET", docs = true)]
fn hello(name: Option<String>) -> Json<Greeting> {
    let name = name.as_deref().unwrap_or("World");
    Json(Greeting {
        message: format!("Hello, {name}!"),
    })
}
