//! Python guests end to end: each example in `examples/python/` is built once per test run
//! with `wasmhost build app.py` (componentize-py installed by wasmhost itself into a tools
//! directory under the test tmpdir), then served by the real binary and driven over HTTP
//! and WebSockets.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::python::{build, python_available, python_example, wasmhost_tools};
use common::{Api, Host, admin_token, client, server, visit, wait_log, wasmhost_remote};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// GET on a named host; the body without the trailing newline Flask's `jsonify` adds.
async fn get(host: &Host, name: &str, path: &str) -> (u16, String) {
    let (status, body) = visit(host, name, path, &[]).await;
    (status, body.trim_end_matches('\n').to_owned())
}

async fn post_json(host: &Host, name: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(host.url(path))
        .header("host", name)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn typed_endpoints_check_arguments_and_answer_like_fastapi() {
    if !python_available("typed_endpoints") {
        return;
    }
    let host = Host::run(&python_example("hello"), &[]);
    let hello = "hello-py-hello.localhost";
    assert_eq!(
        get(&host, hello, "/?name=Ada&excited=true").await,
        (200, r#"{"message":"Hello, Ada!"}"#.into())
    );
    assert_eq!(
        get(&host, hello, "/").await,
        (200, r#"{"message":"Hello, World."}"#.into())
    );
    let (status, body) = get(&host, hello, "/?excited=maybe").await;
    assert_eq!(status, 422, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["detail"][0]["loc"], json!(["query", "excited"]));
    assert_eq!(detail["detail"][0]["type"], "bool_parsing");

    let order = "hello-py-order.localhost";
    let r = post_json(
        &host,
        order,
        "/?quantity=3&coupon=TENOFF",
        json!({"name": "tea", "price": 2.5}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"name": "tea", "total": 6.75})
    );
    let r = post_json(&host, order, "/?quantity=x", json!({"name": 1})).await;
    assert_eq!(r.status(), 422);
    let detail = r.json::<Value>().await.unwrap()["detail"].clone();
    let locs: Vec<&Value> = detail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["loc"])
        .collect();
    assert_eq!(
        locs,
        [
            &json!(["body", "name"]),
            &json!(["body", "price"]),
            &json!(["query", "quantity"])
        ],
        "{detail}"
    );
    // The host serves the docs from the schemas the SDK derived from the type hints.
    let (status, body) = get(&host, order, "/openapi.json").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        doc["paths"]["/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Item",
        "{doc}"
    );
    assert_eq!(
        doc["components"]["schemas"]["Item"]["required"],
        json!(["name", "price"])
    );
    assert_eq!(get(&host, order, "/docs").await.0, 200);

    let r = post_json(&host, "hello-py-echo.localhost", "/", json!({"a": [1, 2]})).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-echo"], "yes");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"received": {"a": [1, 2]}})
    );
    assert_eq!(
        get(&host, "hello-py-teapot.localhost", "/").await,
        (418, r#"{"detail":"I'm a teapot"}"#.into())
    );
}

#[tokio::test]
async fn handler_errors_are_500s_logged_and_the_host_keeps_serving() {
    if !python_available("handler_errors") {
        return;
    }
    let host = Host::run(&python_example("hello"), &[]);
    let (status, body) = get(&host, "hello-py-boom.localhost", "/?x=0").await;
    assert_eq!((status, body.as_str()), (500, "Internal Server Error"));
    assert!(wait_log(&host, "ZeroDivisionError"), "{}", host.log());
    assert!(wait_log(&host, "Traceback"), "{}", host.log());
    // A module first imported at request time was not bundled: the log names it.
    let (status, _) = get(&host, "hello-py-late-import.localhost", "/").await;
    assert_eq!(status, 500);
    assert!(
        wait_log(&host, "this_module_is_not_bundled"),
        "{}",
        host.log()
    );
    assert!(wait_log(&host, "not imported when the component was built"));
    assert_eq!(
        get(&host, "hello-py-boom.localhost", "/?x=4").await,
        (200, r#"{"ratio":0.25}"#.into())
    );
}

#[tokio::test]
async fn an_unmodified_flask_app_is_served() {
    if !python_available("flask") {
        return;
    }
    let host = Host::run(&python_example("flask"), &[]);
    let name = "flask-py-flask-app.localhost";
    assert_eq!(
        get(&host, name, "/").await,
        (200, r#"{"status":"ok"}"#.into())
    );
    assert_eq!(
        get(&host, name, "/hello/Ada").await,
        (200, "Hello, Ada!".into())
    );
    let r = post_json(&host, name, "/notes", json!({"text": "buy tea"})).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["text"], "buy tea");
    let r = post_json(&host, name, "/notes", json!({"nope": 1})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "a note needs a text"})
    );
    let (status, body) = get(&host, name, "/missing").await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "not found", "path": "/missing"})
    );
    assert_eq!(
        visit(&host, name, "/stream", &[]).await,
        (200, "line 0\nline 1\nline 2\n".into())
    );
    // A multipart upload reaches request.files.
    let boundary = "wasmhost-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n0123456789\r\n--{boundary}--\r\n"
    );
    let r = client()
        .post(host.url("/upload"))
        .header("host", name)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"filename": "a.bin", "size": 10, "field": "hi"})
    );
    let r = client()
        .head(host.url("/"))
        .header("host", name)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "");
    let (status, _) = get(&host, name, "/fail").await;
    assert_eq!(status, 500);
    assert!(wait_log(&host, "the handler failed"), "{}", host.log());
    assert_eq!(get(&host, name, "/").await.0, 200);
}

#[tokio::test]
async fn a_flask_client_sending_requests_one_after_another_keeps_its_instance() {
    if !python_available("flask") {
        return;
    }
    // The notes live in the instance. Flask's response has a content length, so the
    // client has all of it, and sends the next request on a new connection, while the
    // call is still returning: that request waits for the instance instead of meeting a
    // fresh one without the notes.
    let host = Host::run(&python_example("flask"), &[]);
    let name = "flask-py-flask-app.localhost";
    let mut notes = Vec::new();
    for n in 0..6 {
        let text = format!("note {n}");
        let r = post_json(&host, name, "/notes", json!({ "text": text })).await;
        assert_eq!(r.status(), 201);
        notes.push(text);
        let (status, body) = get(&host, name, "/notes").await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            json!(notes),
            "request {n} met another instance; the host's log:\n{}",
            host.log()
        );
    }
}

#[tokio::test]
async fn an_unmodified_starlette_app_is_served_with_sse_and_websockets() {
    if !python_available("starlette") {
        return;
    }
    let host = Host::run(&python_example("starlette"), &[]);
    let name = "starlette-py-web.localhost";
    let r = client()
        .get(host.url("/"))
        .header("host", name)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-served-by"], "starlette-in-wasm");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "ok", "lifespan": true})
    );
    let (status, body) = get(&host, name, "/items/42?q=tea").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"item_id": 42, "q": "tea"})
    );
    assert_eq!(get(&host, name, "/items/tea").await.0, 404);
    let r = post_json(&host, name, "/items", json!({"name": "tea"})).await;
    assert_eq!(r.status(), 201);
    assert_eq!(get(&host, name, "/sync").await, (200, "sync ok".into()));
    // Three concurrent 0.2 s sleeps: together about 0.2 s (one after another would be 0.6 s).
    let (status, body) = get(&host, name, "/gather").await;
    assert_eq!(status, 200, "{body}");
    let elapsed = serde_json::from_str::<Value>(&body).unwrap()["elapsed"]
        .as_f64()
        .unwrap();
    assert!((0.19..0.55).contains(&elapsed), "gather took {elapsed} s");
    let r = client()
        .get(host.url("/events"))
        .header("host", name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(
        r.text().await.unwrap(),
        "data: tick 0\n\ndata: tick 1\n\ndata: tick 2\n\n"
    );
    let (status, body) = get(&host, name, "/fail").await;
    assert_eq!((status, body.as_str()), (500, "Internal Server Error"));
    assert!(wait_log(&host, "the handler failed"), "{}", host.log());

    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{}/ws",
            host.port
        ))
        .unwrap();
    request.headers_mut().insert("host", name.parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), 101);
    for text in ["one", "two"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text(format!("echo: {text}"))
        );
    }
    ws.send(Message::text("bye")).await.unwrap();
    match ws.next().await {
        Some(Ok(m)) => assert!(m.is_close(), "{m:?}"),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn class_state_lives_in_a_warm_instance() {
    if !python_available("class") {
        return;
    }
    let wasm = python_example("counter");
    let host = Host::run(&wasm, &[]);
    let name = "counter-py-counter-hit.localhost";
    for count in 1..=3 {
        let (status, body) = get(&host, name, "/").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"count": count, "table": 1000})
        );
    }
    let (code, out) = common::wasmhost(&[
        "run",
        &wasm.display().to_string(),
        "--function",
        "Counter_square",
        "--args",
        "[12]",
        "--cache-dir",
        &common::shared_cache().display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.trim() == "144"), "{out}");
}

/// Deploys a built component as `app` and returns its functions' ids by name.
async fn deploy(api: &Api<'_>, wasm: &Path, app: &str) -> HashMap<String, Value> {
    let wasm = wasm.display().to_string();
    let (code, out) = wasmhost_remote(api.host, &api.token, &["deploy", &wasm, "--name", app]);
    assert_eq!(code, 0, "{out}");
    let app_id = api.app_id(app).await;
    api.get(&format!("/apps/{app_id}/functions")).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_owned(), f.clone()))
        .collect()
}

#[tokio::test]
async fn functions_retry_spawn_map_and_schedule() {
    if !python_available("functions") {
        return;
    }
    let wasm = python_example("functions");
    let dir = tempfile::tempdir().unwrap();
    // The run's shared cache: the component compiles once for both tests that deploy it.
    let cache = common::shared_cache().display().to_string();
    let srv = server(dir.path(), &["--cache-dir", &cache]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let fns = deploy(&api, &wasm, "functions-py").await;
    let id = |name: &str| fns[name]["function_id"].as_str().unwrap().to_owned();
    assert_eq!(fns["hourly"]["schedule"], "period(3600s)");
    assert_eq!(
        fns["hourly"]["allowed_outbound_hosts"],
        serde_json::json!(["https://api.example.com"])
    );
    assert_eq!(
        fns["square"]["allowed_outbound_hosts"],
        serde_json::json!([])
    );
    assert_eq!(
        fns["weekday_report"]["schedule"],
        "cron(0 9 * * 1-5, Europe/Paris)"
    );
    let post = reqwest::Method::POST;
    let invoke = |name: &str| format!("/functions/{}/invocations", id(name));
    let (status, r) = api
        .call(post.clone(), &invoke("square"), Some(json!({"args": [7]})))
        .await;
    assert_eq!((status, &r["result"]), (200, &json!(49)), "{r}");
    let (status, r) = api
        .call(
            post.clone(),
            &invoke("square"),
            Some(json!({"args": ["x"]})),
        )
        .await;
    assert_eq!(status, 422, "{r}");
    assert_eq!(r["detail"][0]["loc"], json!(["args", 0]), "{r}");
    // Two failed attempts, then the retry policy's third succeeds.
    let (status, r) = api
        .call(
            post.clone(),
            &invoke("flaky"),
            Some(json!({"kwargs": {"succeed_on": 3}})),
        )
        .await;
    assert_eq!((status, &r["result"]), (200, &json!({"attempt": 3})), "{r}");
    // .map from inside the guest, through the host.
    let (status, r) = api
        .call(
            post.clone(),
            &invoke("sum_of_squares"),
            Some(json!({"args": [5]})),
        )
        .await;
    assert_eq!((status, &r["result"]), (200, &json!(30)), "{r}");
    // The job-queue pattern over the web endpoints: spawn, then poll until ready.
    let r = client()
        .post(srv.url("/?x=9"))
        .header("host", "main--functions-py-submit.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let call_id = r.json::<Value>().await.unwrap()["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        let (status, body) = visit(
            &srv,
            "main--functions-py-result.localhost",
            &format!("/?call_id={call_id}"),
            &[],
        )
        .await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 202, "{body}");
        assert!(Instant::now() < deadline, "the spawned call never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(result, r#"{"result":81}"#);
    let (status, body) = visit(
        &srv,
        "main--functions-py-remote-square.localhost",
        "/?x=6",
        &[],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"square":36}"#));

    // Secrets are environment variables; volumes are directories, shared between calls.
    let (code, out) = wasmhost_remote(
        &srv,
        &api.token,
        &[
            "secret",
            "create",
            "demo-secret",
            "GREETING=hi-from-a-secret",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (_, r) = api.call(post.clone(), &invoke("whoami"), None).await;
    assert_eq!(r["result"], "hi-from-a-secret", "{r}");
    let (_, r) = api
        .call(
            post.clone(),
            &invoke("write_note"),
            Some(json!({"args": ["a.txt", "hello volume"]})),
        )
        .await;
    assert_eq!(r["result"], 12, "{r}");
    let (_, r) = api
        .call(
            post.clone(),
            &invoke("read_note"),
            Some(json!({"args": ["a.txt"]})),
        )
        .await;
    assert_eq!(r["result"], "hello volume", "{r}");
}

#[tokio::test]
async fn a_batched_python_function_and_endpoint_answer_each_caller_from_its_batch() {
    if !python_available("batched") {
        return;
    }
    let wasm = python_example("functions");
    let dir = tempfile::tempdir().unwrap();
    // The run's shared cache: the component compiles once for both tests that deploy it.
    let cache = common::shared_cache().display().to_string();
    let srv = server(dir.path(), &["--cache-dir", &cache]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let fns = deploy(&api, &wasm, "functions-py").await;
    let double = format!(
        "/functions/{}/invocations",
        fns["double"]["function_id"].as_str().unwrap()
    );
    // A lone call is not held for a full batch.
    let (status, r) = api
        .call(reqwest::Method::POST, &double, Some(json!({"args": [4]})))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"], json!({"value": 8, "batch": 1}), "{r}");
    // 20 callers at once; caller 5's negative number fails only its call.
    let calls = (0..20i64).map(|i| {
        let x = if i == 5 { -5 } else { i };
        let (api, double) = (&api, &double);
        async move {
            let body = Some(json!({"args": [x]}));
            (x, api.call(reqwest::Method::POST, double, body).await)
        }
    });
    let mut largest = 0;
    for (x, (status, r)) in futures_util::future::join_all(calls).await {
        if x < 0 {
            assert_eq!(r["status"], "failure", "{r}");
            assert!(r.to_string().contains("-5 is negative"), "{r}");
            continue;
        }
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["result"]["value"], json!(2 * x), "caller {x} got {r}");
        let batch = r["result"]["batch"].as_u64().unwrap_or(0);
        assert!((1..=8).contains(&batch), "{r}");
        largest = largest.max(batch);
    }
    assert!(largest > 1, "no batch formed");

    // A batched web endpoint: 20 requests at once; request 5 is negative (its own 400),
    // request 7 is no number (its own 422).
    let requests = (0..20i64).map(|i| {
        let query = match i {
            5 => "/?x=-5".to_owned(),
            7 => "/?x=many".to_owned(),
            i => format!("/?x={i}"),
        };
        let srv = &srv;
        async move {
            (
                i,
                visit(srv, "main--functions-py-triple.localhost", &query, &[]).await,
            )
        }
    });
    let mut largest = 0;
    for (i, (status, body)) in futures_util::future::join_all(requests).await {
        match i {
            5 => assert_eq!(
                (status, body.as_str()),
                (400, r#"{"detail":"-5 is negative"}"#)
            ),
            7 => assert_eq!(status, 422, "{body}"),
            i => {
                assert_eq!(status, 200, "request {i}: {body}");
                let r: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(r["value"], json!(3 * i), "request {i} got {r}");
                largest = largest.max(r["batch"].as_u64().unwrap_or(0));
            }
        }
    }
    assert!(largest > 1, "no batch of requests formed");
}

/// `wasmhost run app.py --function NAME` (Modal's `modal run`) runs the function with the
/// rest of its app deployed beside it, so calls between functions work without a server.
#[test]
fn run_function_calls_other_functions_of_its_app() {
    if !python_available("run_function") {
        return;
    }
    let wasm = python_example("functions");
    let wasm = wasm.display().to_string();
    let run = |name: &str, args: &str| {
        let (ok, all) = wasmhost_tools(&["run", &wasm, "--function", name, "--args", args]);
        // The result is stdout's one line, which comes first (stderr's log after it).
        let stdout = all.lines().next().unwrap_or_default().trim().to_owned();
        (ok, stdout, all)
    };
    let (ok, stdout, all) = run("sum_of_squares", "[5]");
    assert!(ok, "{all}");
    assert_eq!(stdout, "30", "0+1+4+9+16 through .map: {all}");
    let (ok, stdout, all) = run("square", "[7]");
    assert!(ok, "{all}");
    assert_eq!(stdout, "49", "{all}");
    let (ok, _, all) = run("no_such_function", "[]");
    assert!(!ok);
    assert!(
        all.contains("sum_of_squares"),
        "the names it has are listed: {all}"
    );
}

#[test]
fn bad_apps_fail_the_build_with_a_clear_message() {
    if !python_available("bad_apps") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.py");
    std::fs::write(
        &app,
        "import wasmhost as modal\n\napp = modal.App('x')\ndef f(:\n    pass\n",
    )
    .unwrap();
    let (ok, out) = build(&app);
    assert!(!ok, "a syntax error fails the build: {out}");
    assert!(out.contains("app.py:4:"), "{out}");
    // A package whose native code it cannot run without is named.
    std::fs::write(
        &app,
        "import wasmhost as modal\nimport orjson\n\nimage = modal.Image.debian_slim().pip_install('orjson==3.11.4')\n\
         app = modal.App('x')\n\n@app.function()\ndef f():\n    return orjson.dumps(1)\n",
    )
    .unwrap();
    let (ok, out) = build(&app);
    assert!(!ok, "orjson cannot run without its native code: {out}");
    assert!(out.contains("orjson"), "{out}");
    assert!(out.contains("no pure-Python or WASI wheel"), "{out}");
}
