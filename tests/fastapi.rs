//! FastAPI inside the sandbox: pydantic-core is built for WASI by `wasmhost build` itself
//! (once per test run, in the shared tools directory), and unmodified FastAPI apps and
//! Modal's `@fastapi_endpoint` run through the real binary: pydantic models in and out,
//! FastAPI's 422s, dependencies, docs, streaming, uploads, a WebSocket, middleware, and
//! the seeds' examples changed only in their import line.

mod common;

use common::python::{build, python_available, python_example};
use common::{Host, client, visit, wait_log};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// GET on a named host, the body parsed as JSON (`Null` when it is not).
async fn get_json(host: &Host, name: &str, path: &str) -> (u16, Value) {
    let (status, body) = visit(host, name, path, &[]).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn post_json(host: &Host, name: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(host.url(path))
        .header("host", name)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A multipart POST of one file field named `file`.
async fn upload(host: &Host, name: &str, path: &str, file: &str, bytes: &[u8]) -> (u16, Value) {
    let boundary = "wasmhost-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = client()
        .post(host.url(path))
        .header("host", name)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `type` and `loc` of each entry of a 422's `detail` list.
fn errors(body: &Value) -> Vec<(String, Value)> {
    body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("no detail list: {body}"))
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_owned(),
                e["loc"].clone(),
            )
        })
        .collect()
}

const SHOP: &str = "fastapi-py-api.localhost";

#[tokio::test]
async fn pydantic_models_validation_dependencies_and_errors() {
    if !python_available("fastapi models") {
        return;
    }
    let host = Host::run(&python_example("fastapi"), &[]);
    let r = client()
        .get(host.url("/"))
        .header("host", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The app's own HTTP middleware ran around the (sync) route.
    assert_eq!(r.headers()["x-served-by"], "fastapi-in-wasm");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));

    // A pydantic model in, a response model out (the extra key is filtered), an async route.
    let (status, body) = post_json(
        &host,
        SHOP,
        "/items/7?quantity=3",
        json!({"name": "tea", "price": 2.5, "tags": ["green"]}),
    )
    .await;
    assert_eq!(
        (status, body),
        (201, json!({"id": 7, "name": "tea", "total": 7.5}))
    );
    // pydantic's own errors, with FastAPI's locations.
    let (status, body) = post_json(
        &host,
        SHOP,
        "/items/0?quantity=x",
        json!({"name": "", "price": -1}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let mut got = errors(&body);
    got.sort_by_key(|(_, loc)| loc.to_string());
    assert_eq!(
        got,
        [
            ("string_too_short".into(), json!(["body", "name"])),
            ("greater_than".into(), json!(["body", "price"])),
            ("greater_than_equal".into(), json!(["path", "item_id"])),
            ("int_parsing".into(), json!(["query", "quantity"])),
        ],
        "{body}"
    );
    let (status, body) = post_json(&host, SHOP, "/items/1", json!({"price": 1})).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "missing", "{body}");
    assert_eq!(body["detail"][0]["msg"], "Field required", "{body}");
    let r = client()
        .post(host.url("/items/1"))
        .header("host", SHOP)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"][0]["type"],
        "json_invalid"
    );

    // HTTPException, with its detail and headers.
    let (status, body) = get_json(&host, SHOP, "/items/999").await;
    assert_eq!((status, body), (404, json!({"detail": "no item 999"})));
    let r = client()
        .get(host.url("/private"))
        .header("host", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "key");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "bad key"})
    );
    // Depends, with a header and with query parameters validated by Query(...).
    let r = client()
        .get(host.url("/private"))
        .header("host", SHOP)
        .header("x-api-key", "secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"key": "secret"}));
    let (status, body) = get_json(&host, SHOP, "/items?offset=2&limit=5").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["page"], json!({"offset": 2, "limit": 5}));
    let (status, body) = get_json(&host, SHOP, "/items?limit=500").await;
    assert_eq!(status, 422);
    assert_eq!(
        errors(&body),
        [("less_than_equal".into(), json!(["query", "limit"]))]
    );

    // An exception in a route: a 500 without the traceback, logged, and the host serves on.
    // Repeated: an exception's traceback once kept the call's channel alive in a reference
    // cycle, and the garbage collector dropped it during a later request (a trap).
    for _ in 0..12 {
        let (status, body) = visit(&host, SHOP, "/fail", &[]).await;
        assert_eq!((status, body.as_str()), (500, "Internal Server Error"));
        assert_eq!(
            get_json(&host, SHOP, "/").await,
            (200, json!({"status": "ok"}))
        );
    }
    assert!(wait_log(&host, "the handler failed"), "{}", host.log());
    assert!(wait_log(&host, "RuntimeError"), "{}", host.log());
    assert!(!host.log().contains("trapped"), "{}", host.log());
}

#[tokio::test]
// Each test has a runtime on a thread of its own: the guard only holds other tests' builds.
#[allow(clippy::await_holding_lock)]
async fn a_client_sending_requests_one_after_another_keeps_its_warm_instance() {
    if !python_available("fastapi background tasks") {
        return;
    }
    // A host of its own: one warm instance, started at deploy. `/visits` counts in that
    // instance and leaves a background task that runs after the response is out, so the
    // client's next request arrives while the call is still returning: it waits for that
    // instance rather than start a new one (a Python instance costs milliseconds, and its
    // state would be lost).
    let host = Host::run(&python_example("fastapi"), &[]);
    // No other test's build runs meanwhile: on two busy cores the guest could be held up
    // past the wait's bound, and a new instance would then be right.
    let _no_builds_meanwhile = common::python::build_lock();
    let (status, body) = get_json(&host, SHOP, "/visits").await;
    assert_eq!(status, 200, "{body}");
    let first = body["visits"].as_i64().expect("a count");
    for n in 1..=4 {
        assert_eq!(
            get_json(&host, SHOP, "/visits").await,
            (200, json!({"visits": first + n})),
            "request {n} after the first met another instance; the host's log:\n{}",
            host.log()
        );
    }
}

#[tokio::test]
async fn docs_streams_uploads_and_websockets() {
    if !python_available("fastapi docs") {
        return;
    }
    let host = Host::run(&python_example("fastapi"), &[]);
    let (status, doc) = get_json(&host, SHOP, "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["info"]["title"], "Shop");
    let create = &doc["paths"]["/items/{item_id}"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Item",
        "{doc}"
    );
    assert_eq!(
        create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Receipt"
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Item"]["properties"]["name"]["minLength"], 1);
    assert_eq!(
        schemas["Receipt"]["required"],
        json!(["id", "name", "total"])
    );
    assert!(schemas["HTTPValidationError"].is_object(), "{doc}");
    for page in ["/docs", "/redoc"] {
        let (status, html) = visit(&host, SHOP, page, &[]).await;
        assert_eq!(status, 200, "{page}");
        assert!(html.contains("/openapi.json"), "{page}: {html}");
    }

    // A StreamingResponse of server-sent events from an async generator.
    let r = client()
        .get(host.url("/stream?n=4"))
        .header("host", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(
        r.text().await.unwrap(),
        "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n"
    );

    // UploadFile through python-multipart.
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (status, body) = upload(&host, SHOP, "/upload", "data.bin", &bytes).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"filename": "data.bin", "size": 100_000, "type": "application/octet-stream"})
    );
    let (status, body) = post_json(&host, SHOP, "/upload", json!({})).await;
    assert_eq!(status, 422);
    assert_eq!(errors(&body), [("missing".into(), json!(["body", "file"]))]);

    // A FastAPI WebSocket route.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{}/ws",
            host.port
        ))
        .unwrap();
    request.headers_mut().insert("host", SHOP.parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), 101);
    for text in ["one", "three"] {
        ws.send(Message::text(text)).await.unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
        assert_eq!(reply, json!({"echo": text, "length": text.len()}));
    }
    ws.send(Message::text("bye")).await.unwrap();
    match ws.next().await {
        Some(Ok(m)) => assert!(m.is_close(), "{m:?}"),
        other => panic!("expected a close, got {other:?}"),
    }
}

/// The seed's `web-api` example: Modal's reference snippets, changed only in the import.
#[tokio::test]
async fn the_seed_web_api_runs_with_fastapi_endpoints() {
    if !python_available("web-api") {
        return;
    }
    let host = Host::run(&python_example("web-api"), &[]);
    assert_eq!(
        get_json(&host, "web-api-hello.localhost", "/?name=Ada").await,
        (200, json!({"message": "Hello, Ada!"}))
    );
    assert_eq!(
        get_json(&host, "web-api-hello.localhost", "/").await,
        (200, json!({"message": "Hello, World!"}))
    );
    // `body: dict` is the JSON body, as FastAPI reads it; docs=True serves the docs.
    let process = "web-api-process.localhost";
    assert_eq!(
        post_json(&host, process, "/", json!({"a": [1, 2]})).await,
        (200, json!({"received": {"a": [1, 2]}}))
    );
    let (status, body) = post_json(&host, process, "/", json!([1])).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(errors(&body), [("dict_type".into(), json!(["body"]))]);
    let (status, doc) = get_json(&host, process, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/"]["post"].is_object(), "{doc}");
    assert_eq!(visit(&host, process, "/docs", &[]).await.0, 200);
    // Without docs=True there are none, as on Modal.
    assert_eq!(
        get_json(&host, "web-api-hello.localhost", "/openapi.json")
            .await
            .0,
        404
    );

    // A pydantic model as the body of a @fastapi_endpoint.
    let item = "web-api-create-item.localhost";
    assert_eq!(
        post_json(&host, item, "/", json!({"name": "tea", "price": 2.5})).await,
        (200, json!({"created": {"name": "tea", "price": 2.5}}))
    );
    let (status, body) = post_json(&host, item, "/", json!({"name": "tea"})).await;
    assert_eq!(status, 422);
    assert_eq!(
        errors(&body),
        [("missing".into(), json!(["body", "price"]))]
    );
    // A GET does not reach a POST endpoint.
    assert_eq!(visit(&host, item, "/", &[]).await.0, 405);

    let app = "web-api-fastapi-app.localhost";
    assert_eq!(
        get_json(&host, app, "/").await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(
        get_json(&host, app, "/items/42").await,
        (200, json!({"item_id": 42}))
    );
    let (status, body) = get_json(&host, app, "/items/tea").await;
    assert_eq!(status, 422);
    assert_eq!(
        errors(&body),
        [("int_parsing".into(), json!(["path", "item_id"]))]
    );
    assert_eq!(
        post_json(&host, app, "/items", json!({"x": 1})).await,
        (200, json!({"created": {"x": 1}}))
    );

    let r = client()
        .get(host.url("/"))
        .header("host", "web-api-stream.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let events: String = (0..10).map(|i| format!("data: {i}\n\n")).collect();
    assert_eq!(r.text().await.unwrap(), events);

    let (status, body) = upload(&host, "web-api-upload.localhost", "/", "a.txt", b"hello").await;
    assert_eq!(
        (status, body),
        (200, json!({"filename": "a.txt", "size": 5}))
    );
    let r = client()
        .get(host.url("/"))
        .header("host", "web-api-custom-response.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-custom-header"], "value");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "hello"})
    );
}

/// The seed's `web-endpoints` example: endpoint options, a FastAPI app and web methods of a
/// class.
#[tokio::test]
async fn the_seed_web_endpoints_runs_with_labels_and_classes() {
    if !python_available("web-endpoints") {
        return;
    }
    let host = Host::run(&python_example("web-endpoints"), &[]);
    let url_of = |needle: &str| -> String {
        // The host prints one URL a line after it listens; wait for the one wanted.
        wait_log(&host, needle);
        let log = host.log();
        log.split_whitespace()
            .find(|w| w.starts_with("http://") && w.contains(needle))
            .and_then(|u| u.strip_prefix("http://"))
            .and_then(|u| u.split(['/', ':']).next())
            .unwrap_or_else(|| panic!("no URL with {needle} in:\n{log}"))
            .to_owned()
    };
    assert_eq!(
        get_json(&host, &url_of("-hello."), "/").await,
        (200, json!({"message": "Hello, world!"}))
    );
    assert_eq!(
        post_json(&host, &url_of("my-endpoint"), "/", json!({"k": "v"})).await,
        (200, json!({"processed": {"k": "v"}}))
    );
    let (status, body) = post_json(&host, &url_of("my-endpoint"), "/", json!("x")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        get_json(&host, &url_of("-create-app."), "/").await,
        (200, json!({"message": "Welcome"}))
    );
    assert_eq!(
        get_json(&host, &url_of("health"), "/").await,
        (200, json!({"status": "healthy"}))
    );
    assert_eq!(
        post_json(&host, &url_of("-process."), "/", json!({"n": 1})).await,
        (200, json!({"processed": {"n": 1}}))
    );
}

/// An app that is not in the repository, written as a Modal user writes one (`from modal
/// import ...` becomes `from wasmhost import ...`), with its dependencies in the file.
#[tokio::test]
async fn an_app_outside_the_repository_runs() {
    if !python_available("fastapi outside") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.py");
    std::fs::write(&app, OUTSIDE_APP).unwrap();
    let wasm = {
        let _one_build_at_a_time = common::python::build_lock();
        let (ok, text) = build(&app);
        assert!(ok, "{text}");
        common::python::built_component(&text)
    };
    let host = Host::run(&wasm, &[]);
    let name = "todo-web.localhost";
    let (status, body) = post_json(&host, name, "/todos", json!({"title": "write tests"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"id": 1, "title": "write tests", "done": false})
    );
    let (status, body) = post_json(&host, name, "/todos", json!({"title": 5})).await;
    assert_eq!(status, 422);
    assert_eq!(
        errors(&body),
        [("string_type".into(), json!(["body", "title"]))]
    );
    // (Each instance keeps its own list: which one serves a request is the host's choice.)
    let (status, body) = get_json(&host, name, "/todos?done=false").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.is_array(), "{body}");
    let (status, body) = get_json(&host, name, "/todos?done=maybe").await;
    assert_eq!(status, 422);
    assert_eq!(
        errors(&body),
        [("bool_parsing".into(), json!(["query", "done"]))]
    );
    let (status, body) = get_json(&host, name, "/todos/7").await;
    assert_eq!((status, body), (404, json!({"detail": "no todo 7"})));
    // pydantic's types: UUID, datetime, Decimal, enums, literals; in and out.
    let order = json!({"id": "12345678-1234-5678-1234-567812345678",
        "when": "2026-12-01T10:00:00Z", "amount": "12.50", "color": "red"});
    let (status, body) = post_json(&host, name, "/orders", order.clone()).await;
    assert_eq!(status, 200, "{body}");
    let mut expected = order;
    expected["kind"] = json!("a");
    assert_eq!(body, expected);
    let bad = json!({"id": "nope", "when": "yesterday", "amount": "12.555", "color": "green", "kind": "c"});
    let (status, body) = post_json(&host, name, "/orders", bad).await;
    assert_eq!(status, 422);
    let types: Vec<String> = errors(&body).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            "uuid_parsing",
            "datetime_from_date_parsing",
            "decimal_max_places",
            "enum",
            "literal_error"
        ],
        "{body}"
    );
    // Form fields (python-multipart), and the state the lifespan set at start-up.
    let r = client()
        .post(host.url("/form"))
        .header("host", name)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Ada&age=36")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"name": "Ada", "age": 36, "started": "yes"})
    );
    let (status, body) = get_json(&host, name, "/slow").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"], json!([0, 1, 2]));
}

const OUTSIDE_APP: &str = r#"import asyncio
import contextlib
import datetime
import decimal
import enum
import uuid
from typing import Annotated, Literal

from fastapi import FastAPI, Form, HTTPException, Request
from pydantic import BaseModel, Field
from wasmhost import App, Image, asgi_app

app = App("todo")
image = Image.debian_slim().pip_install("fastapi==0.165.0", "pydantic==2.14.4", "python-multipart==0.0.34")


class NewTodo(BaseModel):
    title: str


class Todo(NewTodo):
    id: int
    done: bool = False


class Color(str, enum.Enum):
    red = "red"
    blue = "blue"


class Order(BaseModel):
    id: uuid.UUID
    when: datetime.datetime
    amount: decimal.Decimal = Field(max_digits=6, decimal_places=2)
    color: Color
    kind: Literal["a", "b"] = "a"


@contextlib.asynccontextmanager
async def lifespan(api):
    api.state.started = "yes"
    yield


@app.function(image=image)
@asgi_app()
def web():
    api = FastAPI(lifespan=lifespan)
    todos: list[Todo] = []

    @api.post("/orders")
    async def order(o: Order) -> Order:
        return o

    @api.post("/form")
    def form(name: Annotated[str, Form()], age: Annotated[int, Form()], request: Request):
        return {"name": name, "age": age, "started": request.app.state.started}

    @api.post("/todos", status_code=201)
    def add(todo: NewTodo) -> Todo:
        created = Todo(id=len(todos) + 1, title=todo.title)
        todos.append(created)
        return created

    @api.get("/todos")
    async def list_todos(done: bool | None = None) -> list[Todo]:
        return [t for t in todos if done is None or t.done == done]

    @api.get("/todos/{todo_id}")
    def get_todo(todo_id: int) -> Todo:
        for t in todos:
            if t.id == todo_id:
                return t
        raise HTTPException(404, f"no todo {todo_id}")

    @api.get("/slow")
    async def slow():
        async def one(i):
            await asyncio.sleep(0.05)
            return i

        return {"results": await asyncio.gather(*(one(i) for i in range(3)))}

    return api
"#;

/// The README's FastAPI example, taken from the README itself, answers as it says.
#[tokio::test]
async fn the_readme_fastapi_example_runs() {
    if !python_available("readme fastapi") {
        return;
    }
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let section = &readme[readme
        .find("### FastAPI and pydantic")
        .expect("the README has a FastAPI section")..];
    let code = section
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a Python block in the FastAPI section");
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.py");
    std::fs::write(&app, code).unwrap();
    let wasm = {
        let _one_build_at_a_time = common::python::build_lock();
        let (ok, text) = build(&app);
        assert!(ok, "{text}");
        common::python::built_component(&text)
    };
    let host = Host::run(&wasm, &[]);
    assert_eq!(
        post_json(
            &host,
            "shop-api.localhost",
            "/items",
            json!({"name": "tea", "price": 2.5})
        )
        .await,
        (200, json!({"name": "tea", "price": 2.5}))
    );
    let (status, body) =
        post_json(&host, "shop-quote.localhost", "/", json!({"name": "tea"})).await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"detail": [{"type": "missing", "loc": ["body", "price"], "msg": "Field required", "input": {"name": "tea"}}]})
    );
    assert_eq!(
        post_json(
            &host,
            "shop-api.localhost",
            "/items",
            json!({"name": "gold", "price": 2500})
        )
        .await,
        (400, json!({"detail": "too expensive"}))
    );
}
