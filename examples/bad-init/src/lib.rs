//! A guest whose `#[wasmhost::init]` work fails: the host must refuse it at load, with
//! the init function's message, and keep serving everything else.

/// Fails the way loading a missing model would.
#[wasmhost::init]
fn load_model() -> Result<(), String> {
    Err("the model weights are missing".into())
}

/// Never served: the component is refused before.
#[wasmhost::endpoint(method = "GET")]
fn predict() -> String {
    "unreachable".into()
}
