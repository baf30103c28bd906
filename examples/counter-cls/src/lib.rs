//! A class endpoint (Modal's `app.cls`): its state lives in one warm instance, `enter`
//! runs once per instance, and `count` rises by one per call.

use schemars::JsonSchema;
use serde::Serialize;
use wasmhost::Json;

/// The class's state.
#[derive(Default)]
struct Counter {
    count: u64,
    enters: u64,
}

/// What `count` answers.
#[derive(Serialize, JsonSchema)]
struct Count {
    /// Calls so far on this instance.
    count: u64,
    /// How often `enter` ran on this instance (1).
    enters: u64,
}

#[wasmhost::cls]
impl Counter {
    /// Runs once when the instance starts.
    #[enter]
    fn enter(&mut self) {
        self.enters += 1;
    }

    /// Runs once when the host retires the instance (e.g. when it stops).
    #[exit]
    fn exit(&mut self) {
        println!("counter-cls: exit after {} calls", self.count);
    }

    /// Counts calls on this instance.
    #[method(method = "GET")]
    fn count(&mut self) -> Json<Count> {
        self.count += 1;
        Json(Count {
            count: self.count,
            enters: self.enters,
        })
    }
}
