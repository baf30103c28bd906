//! Modal's `@concurrent` and `@batched` with the Rust SDK (`examples/concurrent`): `async
//! fn` handlers await I/O while other inputs run in the same instance, and a batched
//! function's or web endpoint's concurrent calls run as one guest call per batch.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Api, Host, admin_token, example, metric, run_cli, server, visit, wasmhost_remote};
use serde_json::{Value, json};

const SLEEPY: &str = "concurrent-sleepy.localhost";

/// Sends `n` requests to the `sleepy` endpoint at once; returns each one's status and
/// JSON answer.
async fn burst(host: &Host, path: &str, n: usize) -> Vec<(u16, Value)> {
    let requests = (0..n).map(|_| async {
        let (status, text) = visit(host, SLEEPY, path, &[]).await;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    });
    futures_util::future::join_all(requests).await
}

#[tokio::test]
async fn an_async_endpoint_serves_16_sleeping_requests_in_one_instance_at_once() {
    let host = Host::run(&example("concurrent"), &[]);
    let created = "wasmhost_instances_created_total";
    let before = metric(&host, created).await;
    let started = Instant::now();
    // Each request sleeps 200 ms, then waits until 16 were in its instance at once: an
    // instance that took them one after another would never see that and time out.
    let answers = burst(&host, "/?ms=200&until=16", 16).await;
    let took = started.elapsed();
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["slept_ms"], 200, "{answer}");
        assert_eq!(answer["in_flight_max"], 16, "{answer}");
    }
    assert_eq!(metric(&host, created).await - before, 1.0, "one instance");
    let live = r#"wasmhost_function_instances_live{app="concurrent",function="sleepy"}"#;
    assert_eq!(metric(&host, live).await, 1.0);
    eprintln!("16 requests that sleep 200 ms each, one instance: {took:?}");
    // A correctness bound, not a speed target: one after another they take 3.2 s.
    assert!(took < Duration::from_millis(1600), "took {took:?}");
    // The instance stays warm for the next burst, and the app's sync handler still works.
    let answers = burst(&host, "/?ms=1", 4).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(metric(&host, created).await - before, 1.0, "reused");
    let (status, text) = visit(&host, "concurrent-hello.localhost", "/?name=p3", &[]).await;
    assert_eq!((status, text.as_str()), (200, "Hello, p3!"));
}

#[tokio::test]
async fn an_async_endpoints_max_inputs_bounds_an_instance_and_more_start_another() {
    let host = Host::run(&example("concurrent"), &[]);
    let created = "wasmhost_instances_created_total";
    let before = metric(&host, created).await;
    // The endpoint declares max_inputs = 16: 20 requests at once need two instances.
    let answers = burst(&host, "/?ms=300", 20).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let most = answers
        .iter()
        .filter_map(|(_, a)| a["in_flight_max"].as_u64())
        .max();
    assert_eq!(most, Some(16), "{answers:?}");
    assert_eq!(
        metric(&host, created).await - before,
        2.0,
        "20 requests, 16 per instance"
    );
    // Bad input still gets its 422 from the SDK, and the host keeps serving.
    let (status, text) = visit(&host, SLEEPY, "/?ms=soon", &[]).await;
    assert_eq!(status, 422, "{text}");
    assert_eq!(burst(&host, "/?ms=1", 1).await[0].0, 200);
}

#[test]
fn an_async_function_awaits_the_clock() {
    let wasm = example("concurrent").display().to_string();
    let (code, out) = run_cli(&["run", &wasm, "--function", "nap", "--args", "[120]"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.trim() == "120"), "{out}");
}

/// Deploys the example as `app` and returns its functions' ids by name.
async fn deploy(api: &Api<'_>, app: &str) -> HashMap<String, String> {
    let wasm = example("concurrent").display().to_string();
    let (code, out) = wasmhost_remote(api.host, &api.token, &["deploy", &wasm, "--name", app]);
    assert_eq!(code, 0, "{out}");
    let app_id = api.app_id(app).await;
    api.get(&format!("/apps/{app_id}/functions")).await["data"]
        .as_array()
        .expect("functions")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or_default().to_owned(),
                f["function_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_async_function_runs_16_sleeping_calls_in_one_instance_each_as_its_own_call() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &["--public-metrics"]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let functions = deploy(&api, "concurrent").await;
    let whoami = format!("/functions/{}/invocations", functions["whoami"]);
    let created = "wasmhost_instances_created_total";
    let before = metric(&srv, created).await;
    let started = Instant::now();
    let calls =
        (0..16).map(|_| api.call(reqwest::Method::POST, &whoami, Some(json!({"args": [200]}))));
    let answers = futures_util::future::join_all(calls).await;
    let took = started.elapsed();
    let mut ids = std::collections::HashSet::new();
    for (status, r) in &answers {
        assert_eq!((*status, &r["status"]), (200, &json!("success")), "{r}");
        // Read after the await, while the other calls ran in the same instance.
        assert_eq!(r["result"]["call_id"], r["call_id"], "{r}");
        assert_eq!(r["result"]["attempt"], 1, "{r}");
        ids.insert(r["call_id"].to_string());
    }
    assert_eq!(ids.len(), 16, "{answers:?}");
    assert_eq!(metric(&srv, created).await - before, 1.0, "one instance");
    let live = r#"wasmhost_function_instances_live{app="concurrent",function="whoami"}"#;
    assert_eq!(metric(&srv, live).await, 1.0);
    let most = answers
        .iter()
        .filter_map(|(_, r)| r["result"]["in_flight_max"].as_u64())
        .max();
    assert!(most > Some(1), "the calls never overlapped: {answers:?}");
    eprintln!("16 calls that sleep 200 ms each, one instance, at most {most:?} at once: {took:?}");
    // A correctness bound, not a speed target: one after another they take 3.2 s.
    assert!(took < Duration::from_millis(1600), "took {took:?}");
    // The instance stays warm for the next call.
    let (status, r) = api
        .call(reqwest::Method::POST, &whoami, Some(json!({"args": [1]})))
        .await;
    assert_eq!(
        (status, &r["result"]["call_id"]),
        (200, &r["call_id"]),
        "{r}"
    );
    assert_eq!(metric(&srv, created).await - before, 1.0, "reused");
}

#[tokio::test]
async fn a_batched_function_runs_concurrent_calls_in_batches_and_answers_each_caller() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &["--public-metrics"]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let functions = deploy(&api, "concurrent").await;
    let double = format!("/functions/{}/invocations", functions["double"]);

    // A lone call does not wait for a full batch: at most about wait_ms (100 ms).
    let started = Instant::now();
    let (status, r) = api
        .call(reqwest::Method::POST, &double, Some(json!({"args": [5]})))
        .await;
    let lone = started.elapsed();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"], json!({"value": 10, "batch": 1}), "{r}");
    // Generous: a full batch never comes, so anything near the call timeout is a bug.
    assert!(lone < Duration::from_secs(5), "a lone call took {lone:?}");

    // 50 callers at once; caller 13 passes a negative number, which fails only its call.
    let calls = (0..50i64).map(|i| {
        let x = if i == 13 { -13 } else { i };
        let (api, double) = (&api, &double);
        async move {
            let (status, r) = api
                .call(reqwest::Method::POST, double, Some(json!({"args": [x]})))
                .await;
            (x, status, r)
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    let mut sizes = Vec::new();
    for (x, status, r) in &answers {
        if *x < 0 {
            assert_eq!(r["status"], "failure", "{r}");
            assert!(r.to_string().contains("-13 is negative"), "{r}");
            continue;
        }
        assert_eq!((*status, &r["status"]), (200, &json!("success")), "{r}");
        assert_eq!(r["result"]["value"], json!(x * 2), "caller {x} got {r}");
        let size = r["result"]["batch"].as_u64().expect("batch size");
        assert!((1..=8).contains(&size), "{r}");
        sizes.push(size);
    }
    let largest = sizes.iter().copied().max().unwrap_or(0);
    assert!(largest > 1, "no batch formed: {sizes:?}");
    let batches = metric(
        &srv,
        r#"wasmhost_batch_size_count{app="concurrent",function="double"}"#,
    )
    .await;
    // 51 calls in batches of at most 8: at least 7 guest calls, fewer than one per call.
    assert!(
        (7.0..51.0).contains(&batches),
        "{batches} batches: {sizes:?}"
    );
    eprintln!("50 concurrent callers ran in {batches} batches, the largest {largest}");

    // Input that does not fit one call's parameters fails that call at the host.
    let (status, r) = api
        .call(reqwest::Method::POST, &double, Some(json!({"args": ["x"]})))
        .await;
    assert_eq!(status, 422, "{r}");
}

#[tokio::test]
async fn a_batched_endpoint_runs_concurrent_requests_in_batches_and_answers_each_one() {
    const TRIPLE: &str = "concurrent-triple.localhost";
    let host = Host::run(&example("concurrent"), &[]);

    // A lone request does not wait for a full batch: at most about wait_ms (100 ms).
    let started = Instant::now();
    let (status, text) = visit(&host, TRIPLE, "/?x=5", &[]).await;
    let lone = started.elapsed();
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(answer, json!({"value": 15, "batch": 1}));
    // Generous: a full batch never comes, so anything near the call timeout is a bug.
    assert!(
        lone < Duration::from_secs(5),
        "a lone request took {lone:?}"
    );
    eprintln!("a lone request to a batched endpoint (wait_ms 100) answered in {lone:?}");

    // 50 requests at once; request 13 is negative (its own 400), request 29 is no number
    // (its own 422 from the SDK's argument extraction).
    let requests = (0..50i64).map(|i| {
        let query = match i {
            13 => "/?x=-13".to_owned(),
            29 => "/?x=many".to_owned(),
            i => format!("/?x={i}"),
        };
        let host = &host;
        async move {
            let (status, text) = visit(host, TRIPLE, &query, &[]).await;
            (i, status, text)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let mut sizes = Vec::new();
    for (i, status, text) in &answers {
        match i {
            13 => assert_eq!((*status, text.as_str()), (400, "-13 is negative")),
            29 => {
                assert_eq!(*status, 422, "{text}");
                assert!(text.contains("\"x\""), "{text}");
            }
            i => {
                assert_eq!(*status, 200, "request {i}: {text}");
                let answer: Value = serde_json::from_str(text).expect("JSON");
                assert_eq!(answer["value"], json!(i * 3), "request {i} got {answer}");
                let size = answer["batch"].as_u64().expect("batch size");
                assert!((1..=8).contains(&size), "{answer}");
                sizes.push(size);
            }
        }
    }
    let largest = sizes.iter().copied().max().unwrap_or(0);
    assert!(largest > 1, "no batch formed: {sizes:?}");
    let batches = metric(
        &host,
        r#"wasmhost_batch_size_count{app="concurrent",function="triple"}"#,
    )
    .await;
    // 51 requests in batches of at most 8: at least 7 guest calls, fewer than one each.
    assert!(
        (7.0..51.0).contains(&batches),
        "{batches} batches: {sizes:?}"
    );
    eprintln!("50 concurrent requests ran in {batches} batches, the largest {largest}");

    // An endpoint that returns one result too few: every request of its batch gets a
    // 500 that says so, and the host keeps serving.
    let requests = (0..4).map(|i| {
        let host = &host;
        async move {
            visit(
                host,
                "concurrent-miscount.localhost",
                &format!("/?x={i}"),
                &[],
            )
            .await
        }
    });
    for (status, text) in futures_util::future::join_all(requests).await {
        assert_eq!(status, 500, "{text}");
        assert!(text.contains("results for"), "{text}");
    }
    assert_eq!(visit(&host, TRIPLE, "/?x=1", &[]).await.0, 200);
}

/// The value of `series` in the host's /metrics (0 while it is absent).
async fn gauge(host: &Host, series: &str) -> f64 {
    let text = common::client()
        .get(host.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits (10 s at most) until `series` reads `want`; returns what it read last.
async fn wait_gauge(host: &Host, series: &str, want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = gauge(host, series).await;
        if value == want || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const P3_LIVE: &str =
    r#"wasmhost_function_instances_live{app="wasi-http-p3",function="wasi-http-p3"}"#;
const P3_IDLE: &str =
    r#"wasmhost_function_instances_idle{app="wasi-http-p3",function="wasi-http-p3"}"#;

#[tokio::test]
async fn wasip3_instances_start_for_min_containers_and_scale_down_to_them() {
    let args = [
        "--min-containers",
        "1",
        "--scaledown-window",
        "1s",
        "--max-inputs",
        "1",
    ];
    let host = Host::run(&example("wasi-http-p3"), &args);
    // Warm before any request, and counted idle.
    assert_eq!(wait_gauge(&host, P3_LIVE, 1.0).await, 1.0);
    assert_eq!(wait_gauge(&host, P3_IDLE, 1.0).await, 1.0);
    let created = "wasmhost_instances_created_total";
    let before = metric(&host, created).await;
    // Three at once, one input each: the warm instance takes one, two more start.
    let requests = (0..3).map(|_| common::client().get(host.url("/sleep?ms=300")).send());
    for r in futures_util::future::join_all(requests).await {
        assert_eq!(r.expect("request").status(), 200);
    }
    assert_eq!(
        metric(&host, created).await - before,
        2.0,
        "the warm one served"
    );
    assert_eq!(wait_gauge(&host, P3_IDLE, 3.0).await, 3.0, "all idle after");
    // After the window the extra two go; min_containers keeps one.
    assert_eq!(
        wait_gauge(&host, P3_LIVE, 1.0).await,
        1.0,
        "scaled down to one"
    );
    assert_eq!(wait_gauge(&host, P3_IDLE, 1.0).await, 1.0);
    let (status, _) = visit(&host, "localhost", "/sleep?ms=1", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&host, created).await - before,
        2.0,
        "the kept one served"
    );
}

#[tokio::test]
async fn wasip3_and_async_endpoints_keep_buffer_containers_ready() {
    let host = Host::run(&example("wasi-http-p3"), &["--buffer-containers", "2"]);
    let (status, _) = visit(&host, "localhost", "/sleep?ms=1", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(wait_gauge(&host, P3_IDLE, 2.0).await, 2.0, "two ready");
    let host = Host::run(&example("concurrent"), &["--buffer-containers", "2"]);
    let (status, _) = visit(&host, SLEEPY, "/?ms=1", &[]).await;
    assert_eq!(status, 200);
    let idle = r#"wasmhost_function_instances_idle{app="concurrent",function="sleepy"}"#;
    assert_eq!(wait_gauge(&host, idle, 2.0).await, 2.0, "two ready");
}

#[tokio::test]
async fn an_idle_concurrent_instance_makes_room_at_max_instances() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--max-instances",
        "2",
        "--public-metrics",
        "--max-inputs",
        "1",
    ];
    let srv = server(dir.path(), &args);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let wasm = std::fs::read(example("wasi-http-p3")).unwrap();
    let (status, body) = api.upload(wasm, "name=p3").await;
    assert_eq!(status, 201, "{body}");
    deploy(&api, "concurrent").await;
    // Two WASIp3 instances, one input each, fill the host; they stay idle after.
    let requests = (0..2).map(|_| visit(&srv, "main--p3-p3.localhost", "/sleep?ms=300", &[]));
    for (status, body) in futures_util::future::join_all(requests).await {
        assert_eq!(status, 200, "{body}");
    }
    let live = r#"wasmhost_function_instances_live{app="p3",function="p3"}"#;
    assert_eq!(gauge(&srv, live).await, 2.0);
    // The other app's endpoint needs a slot: an idle WASIp3 instance gives it up.
    let (status, body) = visit(&srv, "main--concurrent-sleepy.localhost", "/?ms=1", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gauge(&srv, live).await, 1.0);
}

#[tokio::test]
async fn per_request_isolation_gives_each_async_call_its_own_instance() {
    let host = Host::run(&example("concurrent"), &["--isolation", "per-request"]);
    let created = "wasmhost_instances_created_total";
    let before = metric(&host, created).await;
    let answers = burst(&host, "/?ms=50", 3).await;
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["served"], 1, "a fresh instance each: {answer}");
    }
    assert_eq!(metric(&host, created).await - before, 3.0);
}

#[tokio::test]
async fn a_prewarmed_wasip3_instance_never_used_gives_its_slot_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmhost.toml");
    std::fs::write(&config, "[functions.\"p3.p3\"]\nmin_containers = 2\n").unwrap();
    let data = dir.path().join("data");
    let config = config.display().to_string();
    let args = [
        "--config",
        &config,
        "--max-instances",
        "2",
        "--public-metrics",
    ];
    let srv = server(&data, &args);
    let api = Api {
        host: &srv,
        token: admin_token(&data),
    };
    deploy(&api, "concurrent").await;
    let wasm = std::fs::read(example("wasi-http-p3")).unwrap();
    let (status, body) = api.upload(wasm, "name=p3").await;
    assert_eq!(status, 201, "{body}");
    // min_containers fills the host with two idle WASIp3 instances that never served.
    let live = r#"wasmhost_function_instances_live{app="p3",function="p3"}"#;
    assert_eq!(wait_gauge(&srv, live, 2.0).await, 2.0);
    let (status, body) = visit(&srv, "main--concurrent-sleepy.localhost", "/?ms=1", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(wait_gauge(&srv, live, 1.0).await, 1.0);
}

#[tokio::test]
async fn a_stop_lets_in_flight_requests_finish_and_closes_idle_connections() {
    use std::io::{Read, Write};
    let mut host = Host::run(&example("concurrent"), &[]);
    // A keep-alive connection left idle: unless the stop closes it, the host waits its
    // whole grace period (10 s) for it.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", host.port)).unwrap();
    idle.write_all(b"GET /?name=idle HTTP/1.1\r\nHost: concurrent-hello.localhost\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 512];
    let n = idle.read(&mut head).unwrap();
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );
    // A request in flight when the stop comes.
    let url = host.url("/?ms=1500");
    let slow = tokio::spawn(async move {
        let r = common::client()
            .get(url)
            .header("host", SLEEPY)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    let live = r#"wasmhost_function_instances_live{app="concurrent",function="sleepy"}"#;
    assert_eq!(
        wait_gauge(&host, live, 1.0).await,
        1.0,
        "the slow request is running"
    );
    let stopping = Instant::now();
    let stopped = tokio::task::spawn_blocking(move || host.terminate());
    let (status, text) = slow.await.unwrap();
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["slept_ms"], 1500, "{answer}");
    let exit = stopped.await.unwrap().expect("the host stops");
    assert!(exit.success(), "{exit:?}");
    // Well inside the grace period: the idle connection was closed, not waited for.
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(8), "the stop took {took:?}");
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        idle.read(&mut head).unwrap(),
        0,
        "the idle connection is closed"
    );
}
