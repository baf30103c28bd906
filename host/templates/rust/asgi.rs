//! {{name}}: an ASGI-style app (Modal's `asgi_app`): routes with path parameters, JSON
//! bodies, middleware and server-sent events.
//!
//! Try it: `wasmhost run .` then `curl http://127.0.0.1:8000/items/7`.

use std::time::Duration;

use serde_json::{Value, json};
use wasmhost::asgi::{App, Reply};
use wasmhost::{Json, Request, Response};

/// The app, built once per instance.
#[wasmhost::asgi_app]
fn web() -> App {
    App::new()
        .middleware(|request, next| next.run(request).header("x-app", "{{name}}"))
        .get("/", |_req| Json(json!({"app": "{{name}}", "status": "ok"})))
        .get(
            "/items/{item_id}",
            |req: Request| -> Result<Response, Response> {
                let item_id: i64 = req.param("item_id")?;
                Ok(Response::new(200).json(&json!({"item_id": item_id})))
            },
        )
        .post("/items", |req: Request| match req.json::<Value>() {
            Ok(body) => Response::new(201).json(&json!({"created": body})),
            Err(e) => Response::error(422, format!("the body is not JSON: {e}")),
        })
        .get("/events", |_req| {
            Reply::sse(|events| {
                for i in 0..3 {
                    events.data(i)?;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(())
            })
        })
}
