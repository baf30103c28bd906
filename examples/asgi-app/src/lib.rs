//! An ASGI-like app (Modal's `asgi_app`): routes with typed path parameters, a JSON
//! body, middleware, lifespan hooks, server-sent events, a WebSocket echo and uploads.

use std::cell::Cell;
use std::time::Duration;

use serde_json::{Value, json};
use wasmhost::asgi::{App, Reply};
use wasmhost::{Json, Request, Response};

thread_local! {
    /// How many times lifespan startup ran in this instance.
    static STARTUPS: Cell<u32> = const { Cell::new(0) };
}

/// The app: built once per instance.
#[wasmhost::asgi_app]
fn web() -> App {
    App::new()
        .on_startup(|| {
            STARTUPS.set(STARTUPS.get() + 1);
            Ok(())
        })
        .on_shutdown(|| println!("asgi-app: lifespan shutdown"))
        .middleware(|request, next| {
            let path = request.path.clone();
            next.run(request)
                .header("x-served-by", format!("asgi-app {path}"))
        })
        .get("/", |_req| Json(json!({"status": "ok"})))
        .get(
            "/items/{item_id}",
            |req: Request| -> Result<Response, Response> {
                let item_id: i64 = req.param("item_id")?;
                Ok(Response::new(200).json(&json!({"item_id": item_id})))
            },
        )
        .post("/items", |req: Request| match req.json::<Value>() {
            Ok(body) => Response::new(200).json(&json!({"created": body})),
            Err(e) => Response::error(422, format!("the body is not JSON: {e}")),
        })
        .get("/lifespan", |_req| {
            Json(json!({"startups": STARTUPS.get()}))
        })
        .get("/stream", |_req| {
            Reply::sse(|events| {
                for i in 0..5 {
                    if i > 0 {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    events.data(i)?;
                }
                Ok(())
            })
        })
        .get("/forever", |_req| {
            // Streams until the client goes away (the host reports it as an error here).
            Reply::stream(200, vec![], |body| {
                loop {
                    body.send("tick\n")?;
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        // A raw handler that returns without `http.response.start`: the host answers 502.
        .raw("GET", "/no-start", |_req, _channel| {})
        .get("/panic", |_req| -> Response {
            panic!("asgi-app: panic on purpose")
        })
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
        .websocket("/ws", |_req, ws| {
            while let Some(message) = ws.recv() {
                if ws.send(message).is_err() {
                    break;
                }
            }
        })
}
