//! {{name}}: a class (Modal's `app.cls`): its state lives in a warm instance, `enter`
//! runs once when the instance starts, and each method is an endpoint.
//!
//! Try it: `wasmhost run .` then `curl http://127.0.0.1:8000/` a few times.

use schemars::JsonSchema;
use serde::Serialize;
use wasmhost::Json;

/// The class's state.
#[derive(Default)]
struct Counter {
    count: u64,
    started: bool,
}

/// What `count` answers.
#[derive(Serialize, JsonSchema)]
struct Count {
    /// Calls so far on this instance.
    count: u64,
    /// Whether `enter` ran.
    started: bool,
}

#[wasmhost::cls]
impl Counter {
    /// Runs once when the instance starts (load a model, open a table, ...).
    #[enter]
    fn enter(&mut self) {
        self.started = true;
    }

    /// Counts calls on this instance.
    #[method(method = "GET")]
    fn count(&mut self) -> Json<Count> {
        self.count += 1;
        Json(Count {
            count: self.count,
            started: self.started,
        })
    }
}
