//! A WSGI-like app (Modal's `wsgi_app`) with the SDK's small Flask-like API.

use serde_json::json;
use wasmhost::wsgi::App;
use wasmhost::{Json, Request, Response};

/// The app: built once per instance.
#[wasmhost::wsgi_app]
fn flask() -> App {
    App::new()
        .get("/", |_req| "Hello from WSGI!")
        .get("/api/data", |_req| Json(json!({"data": [1, 2, 3]})))
        .get(
            "/hello/{name}",
            |req: Request| -> Result<String, Response> {
                Ok(format!("Hello, {}!", req.param::<String>("name")?))
            },
        )
        .post("/echo", |req: Request| Response::new(200).body(req.body))
        .post("/upload", |req: Request| -> Result<Response, Response> {
            let parts = req.multipart()?;
            let file = parts
                .into_iter()
                .find(|p| p.name.as_deref() == Some("file"))
                .ok_or_else(|| Response::error(422, "no `file` field"))?;
            Ok(Response::new(200).json(&json!({
                "filename": file.filename,
                "size": file.data.len(),
            })))
        })
}
