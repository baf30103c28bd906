//! {{name}}: a typed web endpoint. Query parameters (or a JSON body) become the
//! arguments; the return value is the JSON answer; `/docs` shows the OpenAPI page.
//!
//! Try it: `wasmhost run .` then `curl 'http://127.0.0.1:8000/?name=Ann'`.

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
fn greet(name: Option<String>) -> Json<Greeting> {
    let name = name.as_deref().unwrap_or("World");
    println!("greeting {name}");
    Json(Greeting {
        message: format!("Hello, {name}!"),
    })
}
