//! {{name}}: a WSGI-style app (Modal's `wsgi_app`) with the SDK's small Flask-like API.
//!
//! Try it: `wasmhost run .` then `curl http://127.0.0.1:8000/hello/Ann`.

use serde_json::json;
use wasmhost::wsgi::App;
use wasmhost::{Json, Request, Response};

/// The app, built once per instance.
#[wasmhost::wsgi_app]
fn web() -> App {
    App::new()
        .get("/", |_req| "Hello from {{name}}!")
        .get("/api/data", |_req| Json(json!({"data": [1, 2, 3]})))
        .get(
            "/hello/{name}",
            |req: Request| -> Result<String, Response> {
                Ok(format!("Hello, {}!", req.param::<String>("name")?))
            },
        )
        .post("/echo", |req: Request| Response::new(200).body(req.body))
}
