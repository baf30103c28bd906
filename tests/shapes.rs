//! The web app shapes end to end: `wasi:http` proxy components, ASGI-like apps
//! (routes, SSE, WebSockets, uploads, lifespan), WSGI-like apps and class endpoints,
//! driven by real HTTP, SSE and WebSocket clients — including clients that misbehave.

mod common;

use std::time::{Duration, Instant};

use common::{Host, client, example};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

async fn get(host: &Host, path: &str) -> (u16, String) {
    let r = client().get(host.url(path)).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A multipart/form-data body with one file field.
fn multipart(field: &str, filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "wasmhost-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_wasi_http_component_is_served_unmodified_and_streams_both_ways() {
    let host = Host::run(&example("wasi-http-proxy"), &[]);
    assert_eq!(get(&host, "/").await, (200, "hello from wasi:http".into()));
    // Named after the file: <stem>-<stem>.localhost.
    assert!(
        host.log()
            .contains("http://wasi-http-proxy-wasi-http-proxy.localhost:"),
        "{}",
        host.log()
    );
    assert_eq!(get(&host, "/nope").await.0, 404);
    // A 3 MiB body goes through the guest's streams and back.
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    let r = client()
        .post(host.url("/echo"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == big, "echoed body differs");
    // A guest that never sets a response gets a 500, and the host keeps serving.
    let (status, body) = get(&host, "/no-response").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("without setting a response"), "{body}");
    // Outbound requests are refused: guests hold no network authority.
    let (status, body) = get(&host, "/outbound").await;
    assert_eq!(status, 200);
    assert!(body.contains("refused"), "{body}");
}

#[tokio::test]
async fn asgi_routes_typed_params_json_and_middleware() {
    let host = Host::run(&example("asgi-app"), &[]);
    let r = client().get(host.url("/")).send().await.unwrap();
    assert_eq!(r.headers()["x-served-by"], "asgi-app /");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let (status, body) = get(&host, "/items/42").await;
    assert_eq!((status, json_of(&body)), (200, json!({"item_id": 42})));
    let (status, body) = get(&host, "/items/abc").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        json_of(&body)["detail"][0]["loc"],
        json!(["path", "item_id"])
    );
    let r = client()
        .post(host.url("/items"))
        .json(&json!({"name": "x", "n": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"created": {"name": "x", "n": 2}})
    );
    assert_eq!(get(&host, "/missing").await.0, 404);
    let r = client().delete(host.url("/items/1")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // CORS still applies to apps.
    assert_eq!(
        client().get(host.url("/")).send().await.unwrap().headers()["access-control-allow-origin"],
        "*"
    );
}

#[tokio::test]
async fn asgi_lifespan_startup_runs_once_per_warm_instance() {
    let host = Host::run(&example("asgi-app"), &[]);
    for _ in 0..3 {
        let (status, body) = get(&host, "/lifespan").await;
        assert_eq!((status, json_of(&body)), (200, json!({"startups": 1})));
    }
}

#[tokio::test]
async fn sse_events_arrive_while_the_handler_still_runs() {
    let host = Host::run(&example("asgi-app"), &[]);
    get(&host, "/").await; // warm up: compile and start an instance first
    let started = Instant::now();
    let r = client().get(host.url("/stream")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut stream = r.bytes_stream();
    let mut text = String::new();
    let mut times = Vec::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while times.len() < text.matches("data: ").count() {
            times.push(started.elapsed());
        }
    }
    assert_eq!(
        text,
        "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n"
    );
    assert_eq!(times.len(), 5, "{times:?}");
    // The first event came before the handler's first 0.2 s sleep ended...
    assert!(
        times[1] - times[0] >= Duration::from_millis(150),
        "{times:?}"
    );
    // ...and the events were spread over the handler's run, not sent at its end.
    assert!(
        times[4] - times[0] >= Duration::from_millis(700),
        "{times:?}"
    );
}

#[tokio::test]
async fn websocket_echo_text_binary_and_close() {
    let host = Host::run(&example("asgi-app"), &[]);
    let url = format!("ws://127.0.0.1:{}/ws", host.port);
    let (mut ws, response) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.close(None).await.unwrap();
    // The server answers the close; the stream then ends.
    while let Some(Ok(m)) = ws.next().await {
        assert!(m.is_close(), "{m:?}");
    }
    // A path with no WebSocket route refuses the handshake with 403.
    let refused =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/nope", host.port)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected a 403 refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn uploads_reach_asgi_and_wsgi_apps() {
    for app in ["asgi-app", "wsgi-app"] {
        let host = Host::run(&example(app), &[]);
        let (content_type, body) = multipart("file", "a.bin", &vec![b'x'; 12345]);
        let r = client()
            .post(host.url("/upload"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{app}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"filename": "a.bin", "size": 12345}),
            "{app}"
        );
        // Not multipart: a 400 from the SDK's parser.
        let r = client()
            .post(host.url("/upload"))
            .body("plain")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{app}");
    }
}

#[tokio::test]
async fn wsgi_app_routes_and_streams_its_body() {
    let host = Host::run(&example("wsgi-app"), &[]);
    assert_eq!(get(&host, "/").await, (200, "Hello from WSGI!".into()));
    // The app declares no length, but its one chunk is all there is by the time the head
    // goes out: sent sized rather than chunked.
    let r = client().get(host.url("/")).send().await.unwrap();
    let framing = (
        r.headers().get("content-length"),
        r.headers().get("transfer-encoding"),
    );
    assert_eq!(framing, (Some(&"16".parse().unwrap()), None));
    let (status, body) = get(&host, "/api/data").await;
    assert_eq!((status, json_of(&body)), (200, json!({"data": [1, 2, 3]})));
    assert_eq!(get(&host, "/hello/Ada").await, (200, "Hello, Ada!".into()));
    assert_eq!(get(&host, "/missing").await.0, 404);
    let big = vec![b'z'; 200_000];
    let r = client()
        .post(host.url("/echo"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), big.len());
}

#[tokio::test]
async fn class_state_lives_in_one_warm_instance_and_enter_runs_once() {
    let host = Host::run(&example("counter-cls"), &[]);
    let mut last = 0;
    for _ in 0..4 {
        let (status, body) = get(&host, "/").await;
        assert_eq!(status, 200, "{body}");
        let v = json_of(&body);
        assert_eq!(v["enters"], 1, "{v}");
        let n = v["count"].as_u64().expect("count");
        assert!(last == 0 || n == last + 1, "{last} then {n}");
        last = n;
    }
    // The Modal-style name reaches the method too.
    let r = client()
        .get(host.url("/"))
        .header("host", format!("counter-cls-count.localhost:{}", host.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["count"], last + 1);
}

#[tokio::test]
async fn guests_that_never_start_a_response_or_trap_get_clean_errors() {
    let host = Host::run(&example("asgi-app"), &[]);
    let (status, body) = get(&host, "/no-start").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("response start"), "{body}");
    let (status, body) = get(&host, "/panic").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("panic on purpose"), "{body}");
    // The host keeps serving, with a fresh instance.
    assert_eq!(get(&host, "/items/7").await.0, 200);
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_does_not_hurt_the_host() {
    let host = Host::run(&example("asgi-app"), &[]);
    for _ in 0..3 {
        let r = client().get(host.url("/forever")).send().await.unwrap();
        let mut stream = r.bytes_stream();
        let first = stream.next().await.unwrap().unwrap();
        assert!(first.starts_with(b"tick"), "{first:?}");
        drop(stream); // hang up while the guest is still streaming
    }
    // The guests notice the disconnect and stop; the host keeps answering.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&host, "/").await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host.log().contains("client disconnected mid-response") {
        assert!(Instant::now() < deadline, "{}", host.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_malformed_websocket_frame_closes_only_that_socket() {
    let host = Host::run(&example("asgi-app"), &[]);
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", host.port))
        .await
        .unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        host.port
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = tcp.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    // An unmasked client frame with reserved bits set: a protocol violation.
    tcp.write_all(&[0xF1, 0x03, b'b', b'a', b'd'])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server kept the broken socket open");
    // Other clients are unaffected.
    let url = format!("ws://127.0.0.1:{}/ws", host.port);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
    assert_eq!(get(&host, "/").await.0, 200);
    // A handshake without a key is a 400, not a crash.
    let r = client()
        .get(host.url("/ws"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn two_web_servers_on_the_same_inner_port_run_side_by_side() {
    let first = Host::run(&example("web-server"), &[]);
    let second = Host::run(&example("web-server"), &[]);
    for host in [&first, &second] {
        let (status, body) = get(host, "/").await;
        assert_eq!(status, 200, "{body}\n{}", host.log());
        assert!(body.contains("web-server"), "{body}");
        assert_eq!(get(host, "/missing").await.0, 404);
    }
}

#[tokio::test]
async fn a_web_server_that_never_listens_answers_503_after_its_startup_timeout() {
    let host = Host::run(&example("command"), &["--startup-timeout", "1s"]);
    let started = Instant::now();
    let (status, body) = get(&host, "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("did not listen on port 8000"), "{body}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // It keeps answering (the same way) rather than falling over.
    assert_eq!(get(&host, "/").await.0, 503);
}

#[tokio::test]
async fn bodies_past_the_limit_answer_413_in_every_shape() {
    for (app, path) in [("asgi-app", "/items"), ("wsgi-app", "/echo"), ("echo", "/")] {
        let host = Host::run(&example(app), &["--max-body", "1000"]);
        let r = client()
            .post(host.url(path))
            .body(vec![b'x'; 5000])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{app}");
        // Small bodies still work.
        let r = client()
            .post(host.url("/items"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 413, "{app}");
    }
}

#[tokio::test]
async fn stopping_the_host_runs_lifespan_shutdown_and_class_exit_hooks() {
    let mut asgi = Host::run(&example("asgi-app"), &[]);
    assert_eq!(get(&asgi, "/").await.0, 200);
    let mut cls = Host::run(&example("counter-cls"), &[]);
    for _ in 0..3 {
        assert_eq!(get(&cls, "/").await.0, 200);
    }
    assert!(
        asgi.terminate().is_some_and(|s| s.success()),
        "{}",
        asgi.log()
    );
    assert!(
        cls.terminate().is_some_and(|s| s.success()),
        "{}",
        cls.log()
    );
    assert!(
        asgi.log().contains("asgi-app: lifespan shutdown"),
        "{}",
        asgi.log()
    );
    assert!(
        cls.log().contains("counter-cls: exit after 3 calls"),
        "{}",
        cls.log()
    );
}
