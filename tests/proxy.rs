//! Standard `wasi:http` components: a fresh instance per request unless the component, a
//! flag or the operator asks for reuse; a guest that never answers gets a 500 at once and
//! its instance is retired. Components built by componentize-js and componentize-py (no
//! wasmhost code in them) answer request after request, and JavaScript apps run from
//! source (`wasmhost run app.js`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Api, Host, admin_token, client, example, metric, root, run_cli, server, visit};
use serde_json::Value;

/// componentize-py, pinned like the Python guests' builds pin it.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

async fn get(host: &Host, path: &str) -> (u16, String) {
    let r = client().get(host.url(path)).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

/// POSTs `n` bytes to `path` and returns the status and the JSON answer.
async fn post(host: &Host, path: &str, n: usize) -> (u16, Value) {
    let r = client()
        .post(host.url(path))
        .body(vec![b'x'; n])
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Where the tools wasmhost installs for building guests live during the tests (its
/// `XDG_CACHE_HOME`): under the target directory, so a run installs them once.
fn tools_home() -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tools-home");
    dir.display().to_string()
}

/// Whether `program` runs; without it a test skips with a notice, except in CI, which
/// installs it (.ci/run).
fn have(program: &str, args: &[&str], needed_for: &str) -> bool {
    let found = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`{program}` is missing in CI, where .ci/run installs it ({needed_for})"
        );
        eprintln!("skipping: `{program}` is not installed; it is needed for {needed_for}");
    }
    found
}

/// The JavaScript example, built once per test run by `wasmhost build` (which installs
/// componentize-js into its tools directory on first use); None when Node.js is missing.
fn js_hello() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let needed = "JavaScript guests (componentize-js)";
            if !have("node", &["--version"], needed) || !have("npm", &["--version"], needed) {
                return None;
            }
            let app = root().join("examples/js/hello/app.js");
            let home = tools_home();
            let (code, out) = run_cli(
                &["build", &app.display().to_string()],
                &[("XDG_CACHE_HOME", &home)],
            );
            assert_eq!(code, 0, "wasmhost build app.js failed:\n{out}");
            let wasm = out
                .lines()
                .find(|l| l.trim_end().ends_with(".wasm"))
                .unwrap_or_else(|| panic!("no component path printed:\n{out}"));
            Some(PathBuf::from(wasm.trim()))
        })
        .clone()
}

/// `tests/guests/py-echo` built with componentize-py (installed in a virtualenv under the
/// target directory), once per test run; None when Python's venv module is missing.
fn py_echo() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let needed = "the componentize-py guest";
            if !have("python3", &["-c", "import venv, ensurepip"], needed) {
                return None;
            }
            let tools = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("componentize-py-0.25.1");
            let tool = tools.join("bin/componentize-py");
            if !tool.is_file() {
                install_componentize_py(&tools);
            }
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py-echo.wasm");
            let status = Command::new(&tool)
                .arg("-d")
                .arg(root().join("wit"))
                .args(["-w", "wasi:http/proxy@0.2.12", "componentize", "app", "-o"])
                .arg(&out)
                .current_dir(root().join("tests/guests/py-echo"))
                .status()
                .expect("componentize-py runs");
            assert!(status.success(), "componentize-py failed ({status})");
            Some(out)
        })
        .clone()
}

/// A virtualenv cannot move (its scripts name its path), so it is made in place; the
/// tool's script appears only once pip finished.
fn install_componentize_py(venv: &Path) {
    let _ = std::fs::remove_dir_all(venv);
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "python3 -m venv failed ({status})");
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", COMPONENTIZE_PY])
        .status()
        .expect("pip runs");
    assert!(
        status.success(),
        "pip install {COMPONENTIZE_PY} failed ({status})"
    );
}

#[tokio::test]
async fn a_javascript_app_runs_from_source_and_answers_100_requests_in_a_row() {
    // Built (and componentize-js installed) once; `run` then takes the cached build.
    if js_hello().is_none() {
        return;
    }
    let app = root().join("examples/js/hello/app.js");
    let home = tools_home();
    let args = [
        "run".to_string(),
        app.display().to_string(),
        "--port".into(),
        "0".into(),
        "--cache-dir".into(),
        common::shared_cache().display().to_string(),
    ];
    let host = Host::start_with_env(&args, &[("XDG_CACHE_HOME", &home)]);
    let (status, body) = get(&host, "/").await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"message":"Hello from JavaScript!"}"#)
    );
    assert_eq!(get(&host, "/nope").await.0, 404);
    // componentize-js guests cannot take a second request: each gets a fresh instance.
    for i in 0..100 {
        let (status, answer) = post(&host, &format!("/echo?i={i}"), i).await;
        assert_eq!(status, 200, "request {i}: {answer}");
        assert_eq!(answer["method"], "POST", "{answer}");
        assert_eq!(answer["path"], "/echo", "{answer}");
        assert_eq!(answer["query"], format!("?i={i}"), "{answer}");
        assert_eq!(answer["length"], i, "{answer}");
        assert_eq!(answer["served"], 1, "request {i} reached a used instance");
    }
}

#[tokio::test]
async fn a_componentize_js_guest_forced_into_reuse_fails_at_once_and_recovers() {
    let Some(wasm) = js_hello() else { return };
    let host = Host::run(&wasm, &["--isolation", "reuse"]);
    for round in 0..2 {
        let (status, answer) = post(&host, "/echo", 3).await;
        assert_eq!(status, 200, "round {round}: {answer}");
        assert_eq!(answer["served"], 1, "round {round}: {answer}");
        // Entered a second time, the guest fails without answering: a 500 at once, not
        // a wait for the timeout, and its instance is retired.
        let (status, answer) = post(&host, "/echo", 3).await;
        assert_eq!(status, 500, "round {round}: {answer}");
    }
}

#[tokio::test]
async fn a_javascript_app_with_a_syntax_error_or_no_handler_is_refused_clearly() {
    let needed = "JavaScript guests (componentize-js)";
    if !have("node", &["--version"], needed) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("broken.js");
    std::fs::write(
        &app,
        "addEventListener('fetch', (e) => {\n  e.respondWith(new Response('x');\n});\n",
    )
    .unwrap();
    let home = tools_home();
    let (code, out) = run_cli(
        &["build", &app.display().to_string()],
        &[("XDG_CACHE_HOME", &home)],
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("broken.js") && out.contains("SyntaxError"),
        "{out}"
    );
    assert!(out.contains("broken.js:2"), "the line is named: {out}");
    // An object componentize-js would never call is refused before the slow build (in a
    // folder of its own: every source beside the app counts).
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("default.js");
    let source = "export default { fetch: (request) => new Response('x') };\n";
    std::fs::write(&app, source).unwrap();
    let (code, out) = run_cli(
        &["build", &app.display().to_string()],
        &[("XDG_CACHE_HOME", &home)],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("registers no request handler"), "{out}");
}

#[tokio::test]
async fn a_componentize_py_guest_answers_100_requests_in_a_row() {
    let Some(wasm) = py_echo() else { return };
    let host = Host::run(&wasm, &[]);
    for i in 0..100 {
        let (status, answer) = post(&host, &format!("/echo?i={i}"), i).await;
        assert_eq!(status, 200, "request {i}: {answer}");
        assert_eq!(answer["method"], "POST", "{answer}");
        assert_eq!(answer["path"], format!("/echo?i={i}"), "{answer}");
        assert_eq!(answer["length"], i, "{answer}");
        assert_eq!(answer["served"], 1, "request {i} reached a used instance");
    }
    drop(host);
    // componentize-py guests survive reuse, so an operator may ask for it.
    let host = Host::run(&wasm, &["--isolation", "reuse"]);
    for i in 1..=5 {
        let (status, answer) = post(&host, "/", 0).await;
        assert_eq!((status, answer["served"].clone()), (200, Value::from(i)));
    }
}

async fn visits(host: &Host) -> (u16, String) {
    get(host, "/visits").await
}

#[tokio::test]
async fn a_wasi_http_component_gets_a_fresh_instance_per_request_by_default() {
    let host = Host::run(&example("wasi-http-proxy"), &[]);
    for _ in 0..3 {
        assert_eq!(visits(&host).await, (200, "1".into()));
    }
}

/// `wasm` with a custom section `name` appended, as a toolchain would add it.
fn with_custom_section(wasm: &[u8], name: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    payload.push(1);
    let mut out = wasm.to_vec();
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend(payload);
    out
}

#[tokio::test]
async fn a_wasi_http_component_that_declares_reuse_keeps_warm_instances() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("declared.wasm");
    let plain = std::fs::read(example("wasi-http-proxy")).unwrap();
    std::fs::write(&wasm, with_custom_section(&plain, "wasmhost:reuse")).unwrap();
    let host = Host::run(&wasm, &[]);
    for n in 1..=3 {
        assert_eq!(visits(&host).await, (200, n.to_string()));
    }
    // Per-request isolation asked for on the command line wins over the declaration.
    let host = Host::run(&wasm, &["--isolation", "per-request"]);
    for _ in 0..2 {
        assert_eq!(visits(&host).await, (200, "1".into()));
    }
}

#[tokio::test]
async fn a_client_sending_requests_one_after_another_meets_the_same_warm_instance() {
    // Each call returns 3 ms after its response: the next request arrives while it is
    // still returning, and waits for it rather than start a fresh instance.
    let host = Host::run(&example("wasi-http-proxy"), &["--isolation", "reuse"]);
    for n in 1..=5 {
        assert_eq!(get(&host, "/linger").await, (200, n.to_string()));
    }
}

#[tokio::test]
async fn a_guest_that_keeps_its_response_unset_gets_500_at_once_and_is_retired() {
    let host = Host::run(&example("wasi-http-proxy"), &["--isolation", "reuse"]);
    assert_eq!(visits(&host).await, (200, "1".into()));
    assert_eq!(visits(&host).await, (200, "2".into()));
    // The guest returns holding its response outparam: the request must not wait for
    // the timeout (300 s here; the client gives up after 60 s).
    let (status, body) = get(&host, "/forget").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("without setting a response"), "{body}");
    assert_eq!(
        visits(&host).await,
        (200, "1".into()),
        "the instance that kept its outparam was reused"
    );
    assert_eq!(visits(&host).await, (200, "2".into()));
    let (status, body) = get(&host, "/no-response").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(visits(&host).await, (200, "1".into()));
}

#[tokio::test]
async fn the_server_config_file_opts_a_wasi_http_component_into_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmhost.toml");
    std::fs::write(
        &config,
        "[functions.\"proxy.proxy\"]\nisolation = \"reuse\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let config = config.display().to_string();
    let srv = server(&data, &["--config", &config]);
    let api = Api {
        host: &srv,
        token: admin_token(&data),
    };
    let plain = std::fs::read(example("wasi-http-proxy")).unwrap();
    for name in ["proxy", "other"] {
        let (status, body) = api.upload(plain.clone(), &format!("name={name}")).await;
        assert_eq!(status, 201, "{body}");
    }
    for n in 1..=3 {
        let r = visit(&srv, "main--proxy-proxy.localhost", "/visits", &[]).await;
        assert_eq!(r, (200, n.to_string()), "the operator asked for reuse");
    }
    for _ in 0..2 {
        let r = visit(&srv, "main--other-other.localhost", "/visits", &[]).await;
        assert_eq!(r, (200, "1".into()), "no one asked for reuse");
    }
}

/// Sends `n` requests to `path` at once; returns each one's status and JSON answer.
async fn burst(host: &Host, path: &str, n: usize) -> Vec<(u16, Value)> {
    let requests = (0..n).map(|_| async {
        let r = client().get(host.url(path)).send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    });
    futures_util::future::join_all(requests).await
}

#[tokio::test]
async fn a_wasip3_service_serves_16_sleeping_requests_in_one_instance_at_once() {
    let host = Host::run(&example("wasi-http-p3"), &[]);
    let created = "wasmhost_instances_created_total";
    let before = metric(&host, created).await;
    let started = std::time::Instant::now();
    // Each request sleeps 200 ms, then waits until 16 were in its instance at once: an
    // instance that took them one after another would never see that and time out.
    let answers = burst(&host, "/sleep?ms=200&until=16", 16).await;
    let took = started.elapsed();
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["slept_ms"], 200, "{answer}");
        assert_eq!(answer["in_flight_max"], 16, "{answer}");
    }
    assert_eq!(metric(&host, created).await - before, 1.0, "one instance");
    let live = r#"wasmhost_function_instances_live{app="wasi-http-p3",function="wasi-http-p3"}"#;
    assert_eq!(metric(&host, live).await, 1.0);
    eprintln!("16 requests that sleep 200 ms each, one WASIp3 instance: {took:?}");
    // The instance stays warm for the next burst.
    let answers = burst(&host, "/sleep?ms=1", 4).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(metric(&host, created).await - before, 1.0, "reused");
}

#[tokio::test]
async fn a_wasip3_instance_takes_max_inputs_requests_and_more_start_another() {
    let host = Host::run(&example("wasi-http-p3"), &["--max-inputs", "4"]);
    let created = "wasmhost_instances_created_total";
    let before = metric(&host, created).await;
    let answers = burst(&host, "/sleep?ms=200&until=4", 8).await;
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["in_flight_max"], 4, "{answer}");
    }
    assert_eq!(
        metric(&host, created).await - before,
        2.0,
        "8 requests, 4 per instance"
    );
}

/// POSTs a body to `host`'s `/echo` a chunk at a time, each sent only once the one before
/// came back: both bodies must stream.
async fn echoes_as_it_arrives(host: &Host) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    tx.send(Ok(b"ping 0;".to_vec())).await.unwrap();
    let mut response = client()
        .post(host.url("/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("response head");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("content-length").is_none(),
        "a body still coming was announced with a length"
    );
    // Each chunk comes back before the next is sent: both bodies stream.
    let mut echoed = Vec::new();
    for i in 0..5 {
        let sent = format!("ping {i};");
        while !echoed.ends_with(sent.as_bytes()) {
            let chunk = response.chunk().await.expect("echo").expect("more echo");
            echoed.extend_from_slice(&chunk);
        }
        if i < 4 {
            tx.send(Ok(format!("ping {};", i + 1).into_bytes()))
                .await
                .unwrap();
        }
    }
    // A large body after them, then the end.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    tx.send(Ok(big.clone())).await.unwrap();
    drop(tx);
    while let Some(chunk) = response.chunk().await.expect("echo") {
        echoed.extend_from_slice(&chunk);
    }
    let expected: Vec<u8> = [
        b"ping 0;ping 1;ping 2;ping 3;ping 4;".as_slice(),
        big.as_slice(),
    ]
    .concat();
    assert_eq!(echoed.len(), expected.len());
    assert!(echoed == expected, "the echo differs from what was sent");
}

#[tokio::test]
async fn a_wasip3_service_streams_the_request_body_back_as_it_arrives() {
    echoes_as_it_arrives(&Host::run(&example("wasi-http-p3"), &[])).await;
}

#[tokio::test]
async fn a_wasi_http_component_streams_the_request_body_back_as_it_arrives() {
    for isolation in ["reuse", "per-request"] {
        let host = Host::run(&example("wasi-http-proxy"), &["--isolation", isolation]);
        echoes_as_it_arrives(&host).await;
    }
}

/// GETs `path` and returns the response's `content-length` and `transfer-encoding`
/// headers and its body.
async fn framing(host: &Host, path: &str) -> (Option<String>, Option<String>, String) {
    let r = client().get(host.url(path)).send().await.expect("request");
    assert_eq!(r.status(), 200, "{path}");
    let header = |name| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (length, chunked) = (header("content-length"), header("transfer-encoding"));
    (length, chunked, r.text().await.expect("body"))
}

#[tokio::test]
async fn a_body_the_guest_wrote_before_the_head_went_out_is_sent_with_its_length() {
    // A WASIp2 guest that wrote its whole body before returning (one that then goes on
    // working, too: `/linger`), with either isolation; a WASIp3 guest, which writes its
    // body from its own task after `handle` returned.
    for isolation in ["reuse", "per-request"] {
        let host = Host::run(&example("wasi-http-proxy"), &["--isolation", isolation]);
        let hello = (Some("20".into()), None, "hello from wasi:http".into());
        assert_eq!(framing(&host, "/").await, hello, "{isolation}");
        let (length, chunked, visits) = framing(&host, "/linger").await;
        assert_eq!((length, chunked), (Some(visits.len().to_string()), None));
    }
    let host = Host::run(&example("wasi-http-p3"), &[]);
    let (length, chunked, body) = framing(&host, "/").await;
    assert_eq!((length, chunked), (Some(body.len().to_string()), None));
}

#[tokio::test]
async fn a_wasip3_instance_that_traps_or_times_out_is_retired_and_the_next_request_works() {
    let host = Host::run(&example("wasi-http-p3"), &["--timeout", "1s"]);
    let (status, body) = get(&host, "/panic").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("asked to panic"), "{body}");
    let (status, body) = get(&host, "/sleep?ms=1").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&host, "/sleep?ms=5000").await;
    assert_eq!(status, 504, "{body}");
    let (status, body) = get(&host, "/sleep?ms=1").await;
    assert_eq!(status, 200, "{body}");
    // A guest that spins without ever awaiting is stopped at its limit too.
    let (status, body) = get(&host, "/spin").await;
    assert_eq!(status, 504, "{body}");
    let (status, body) = get(&host, "/sleep?ms=1").await;
    assert_eq!(status, 200, "{body}");
    // A fresh instance for every request when per-request isolation is asked for.
    let host = Host::run(&example("wasi-http-p3"), &["--isolation", "per-request"]);
    for _ in 0..3 {
        let (status, body) = get(&host, "/sleep?ms=1").await;
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["served"], 1, "{answer}");
    }
}

#[tokio::test]
async fn the_server_config_file_sets_a_wasip3_apps_max_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmhost.toml");
    std::fs::write(&config, "[functions.\"p3.p3\"]\nmax_inputs = 2\n").unwrap();
    let data = dir.path().join("data");
    let config = config.display().to_string();
    let srv = server(&data, &["--config", &config]);
    let api = Api {
        host: &srv,
        token: admin_token(&data),
    };
    let wasm = std::fs::read(example("wasi-http-p3")).unwrap();
    let (status, body) = api.upload(wasm, "name=p3").await;
    assert_eq!(status, 201, "{body}");
    let requests =
        (0..4).map(|_| visit(&srv, "main--p3-p3.localhost", "/sleep?ms=100&until=2", &[]));
    for (status, body) in futures_util::future::join_all(requests).await {
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["in_flight_max"], 2, "{answer}");
    }
    let live = r#"wasmhost_function_instances_live{app="p3",function="p3"}"#;
    let text = client()
        .get(srv.url("/metrics"))
        .bearer_auth(admin_token(&data))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{live} ");
    let count = text.lines().find_map(|l| l.strip_prefix(&prefix));
    assert_eq!(count, Some("2"), "4 requests, 2 per instance:\n{text}");
}

#[tokio::test]
async fn a_redeployed_wasip3_app_ends_the_old_versions_instance() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = server(&data, &[]);
    let api = Api {
        host: &srv,
        token: admin_token(&data),
    };
    let live = r#"wasmhost_function_instances_live{app="p3",function="p3"}"#;
    let metrics = || async {
        let text = client()
            .get(srv.url("/metrics"))
            .bearer_auth(admin_token(&data))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let prefix = format!("{live} ");
        let value = text.lines().find_map(|l| l.strip_prefix(&prefix));
        value.map(|v| v.trim().to_owned())
    };
    let plain = std::fs::read(example("wasi-http-p3")).unwrap();
    for version in [plain.clone(), with_custom_section(&plain, "version-2")] {
        let (status, body) = api.upload(version, "name=p3").await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = visit(&srv, "main--p3-p3.localhost", "/sleep?ms=1", &[]).await;
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["served"], 1, "a new version starts a new instance");
    }
    // The first version's instance ends with it rather than idling out its window.
    let mut seen = None;
    for _ in 0..100 {
        seen = metrics().await;
        if seen.as_deref() == Some("1") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{live} stayed at {seen:?}");
}
