//! The foundation slice end to end: `wasmhost run` serving typed endpoints over real HTTP.

mod common;

use common::{Host, client, example, wasmhost};
use serde_json::{Value, json};

async fn get_json(url: &str, host: Option<&str>) -> (u16, Value) {
    let mut req = client().get(url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON body"))
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_on_the_same_port() {
    use http_body_util::BodyExt;
    let host = Host::run(&example("hello"), &[]);
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    for name in ["first", "second"] {
        let uri = host.url(&format!("/?name={name}")).parse().unwrap();
        let response = h2.get(uri).await.expect("an HTTP/2 answer");
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"message": format!("Hello, {name}!")}));
    }
    // HTTP/1.1 on the same port.
    let (status, body) = get_json(&host.url("/?name=h1"), None).await;
    assert_eq!((status, body), (200, json!({"message": "Hello, h1!"})));
}

#[tokio::test]
async fn hello_greets_by_name_and_defaults_to_world() {
    let host = Host::run(&example("hello"), &[]);
    let (status, body) = get_json(&host.url("/?name=Ada"), None).await;
    assert_eq!((status, body), (200, json!({"message": "Hello, Ada!"})));
    let (status, body) = get_json(&host.url("/"), None).await;
    assert_eq!((status, body), (200, json!({"message": "Hello, World!"})));
    // The Modal-style name reaches it too.
    let (status, body) = get_json(
        &host.url("/?name=Bo"),
        Some(&format!("hello-hello.localhost:{}", host.port)),
    )
    .await;
    assert_eq!((status, body), (200, json!({"message": "Hello, Bo!"})));
    assert!(
        host.log()
            .contains(&format!("http://hello-hello.localhost:{}/", host.port)),
        "{}",
        host.log()
    );
}

#[tokio::test]
async fn echo_returns_the_json_body_and_refuses_non_json() {
    let host = Host::run(&example("echo"), &[]);
    let r = client()
        .post(host.url("/"))
        .json(&json!({"x": 1, "y": [true]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"received": {"x": 1, "y": [true]}})
    );
    let r = client()
        .post(host.url("/"))
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body"]), "{body}");
}

#[tokio::test]
async fn wrong_types_and_missing_arguments_are_422_with_details() {
    let host = Host::run(&example("misbehave"), &[]);
    let h = format!("misbehave-add.localhost:{}", host.port);
    let (status, body) = get_json(&host.url("/?a=2&b=40"), Some(&h)).await;
    assert_eq!((status, body), (200, json!({"sum": 42})));
    let (status, body) = get_json(&host.url("/?a=two"), Some(&h)).await;
    assert_eq!(status, 422, "{body}");
    let detail = body["detail"].as_array().expect("detail list");
    let locs: Vec<&Value> = detail.iter().map(|d| &d["loc"]).collect();
    assert!(locs.contains(&&json!(["query", "a"])), "{body}");
    assert!(locs.contains(&&json!(["query", "b"])), "{body}");
    let missing = detail
        .iter()
        .find(|d| d["loc"] == json!(["query", "b"]))
        .unwrap();
    assert_eq!(missing["type"], "missing");
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let host = Host::run(&example("hello"), &[]);
    let r = client().delete(host.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    let r = client().post(host.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn cors_preflight_and_allow_origin() {
    let host = Host::run(&example("echo"), &[]);
    let r = client()
        .request(reqwest::Method::OPTIONS, host.url("/"))
        .header("origin", "http://example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["access-control-allow-methods"], "POST");
    let r = client()
        .post(host.url("/"))
        .header("origin", "http://example.com")
        .json(&json!(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn openapi_document_and_offline_docs_page() {
    let host = Host::run(&example("hello"), &[]);
    let (status, doc) = get_json(&host.url("/openapi.json"), None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let op = &doc["paths"]["/"]["get"];
    assert_eq!(op["operationId"], "hello", "{doc}");
    let params = op["parameters"].as_array().expect("parameters");
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "name" && p["in"] == "query"),
        "{doc}"
    );
    let r = client().get(host.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("openapi.json"));
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "docs page loads something remote"
    );
    // Docs are off by default: echo has none.
    let echo = Host::run(&example("echo"), &[]);
    let r = client()
        .get(echo.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn custom_status_and_headers() {
    let host = Host::run(&example("misbehave"), &[]);
    let r = client()
        .get(host.url("/"))
        .header("host", "misbehave-teapot.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(r.headers()["x-custom"], "yes");
}

#[tokio::test]
async fn unknown_host_is_404_naming_what_is_served() {
    let host = Host::run(&example("misbehave"), &[]);
    let (status, body) = get_json(&host.url("/"), Some("nothing-here.localhost")).await;
    assert_eq!(status, 404);
    let msg = body["detail"].as_str().unwrap();
    assert!(
        msg.contains("nothing-here.localhost") && msg.contains("misbehave-ok.localhost"),
        "{msg}"
    );
    // Several endpoints: the bare address names none of them.
    let (status, _) = get_json(&host.url("/"), None).await;
    assert_eq!(status, 404);
}

/// Requests `fn` on the misbehave app; returns status and the `detail` text.
async fn misbehave(host: &Host, function: &str) -> (u16, String) {
    let (status, body) = get_json(
        &host.url("/"),
        Some(&format!("misbehave-{function}.localhost")),
    )
    .await;
    (
        status,
        body["detail"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn a_trap_is_a_500_and_the_host_keeps_serving() {
    let host = Host::run(&example("misbehave"), &[]);
    let (status, detail) = misbehave(&host, "trap").await;
    assert_eq!(status, 500);
    assert!(
        detail.contains("trapped") && detail.contains("trap on purpose"),
        "{detail}"
    );
    assert_eq!(misbehave(&host, "ok").await.0, 200);
}

#[tokio::test]
async fn an_endless_loop_is_a_504_and_the_host_keeps_serving() {
    let host = Host::run(&example("misbehave"), &[]);
    let started = std::time::Instant::now();
    let (status, detail) = misbehave(&host, "spin").await;
    assert_eq!(status, 504, "{detail}");
    assert!(detail.contains("timed out"), "{detail}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(misbehave(&host, "ok").await.0, 200);
}

#[tokio::test]
async fn the_memory_cap_stops_a_hog_and_the_host_keeps_serving() {
    let host = Host::run(&example("misbehave"), &[]);
    let (status, detail) = misbehave(&host, "hog").await;
    assert_eq!(status, 500);
    assert!(detail.contains("memory limit of 32 MiB"), "{detail}");
    assert_eq!(misbehave(&host, "ok").await.0, 200);
}

#[tokio::test]
async fn concurrent_misbehaviour_does_not_disturb_good_requests() {
    let host = Host::run(&example("misbehave"), &[]);
    let spin = misbehave(&host, "spin");
    let good = async {
        let mut ok = 0;
        for _ in 0..20 {
            if misbehave(&host, "ok").await.0 == 200 {
                ok += 1;
            }
        }
        ok
    };
    let ((spin_status, _), ok) = tokio::join!(spin, good);
    assert_eq!(spin_status, 504);
    assert_eq!(ok, 20);
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.wasm");
    std::fs::write(&text, "hello\n").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let truncated = dir.path().join("truncated.wasm");
    let hello = std::fs::read(example("hello")).unwrap();
    std::fs::write(&truncated, &hello[..hello.len() / 2]).unwrap();
    let cases = [
        (text, "not a WebAssembly binary"),
        (core, "core WebAssembly module, not a component"),
        (truncated, "invalid component"),
        (example("no-world"), "does not serve"),
        (dir.path().join("missing.wasm"), "cannot read"),
    ];
    for (path, reason) in cases {
        let path = path.display().to_string();
        let (code, out) = wasmhost(&[
            "run",
            &path,
            "--port",
            "0",
            "--cache-dir",
            &dir.path().display().to_string(),
        ]);
        assert_ne!(code, 0, "{path} was accepted: {out}");
        assert!(out.contains(reason), "{path}: expected {reason:?} in {out}");
    }
}

#[test]
fn a_second_run_skips_compilation() {
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().display().to_string();
    let first = Host::run(&example("hello"), &["--cache-dir", &cache_arg]);
    wait_for(&first, "loaded");
    assert!(first.log().contains("compiled now"), "{}", first.log());
    drop(first);
    let second = Host::run(&example("hello"), &["--cache-dir", &cache_arg]);
    wait_for(&second, "loaded");
    assert!(second.log().contains("from the cache"), "{}", second.log());
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A compile cache (and its `--cache-dir` argument) that one run of `hello` has filled.
fn hello_cached() -> (tempfile::TempDir, String) {
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().display().to_string();
    let first = Host::run(&example("hello"), &["--cache-dir", &cache_arg]);
    wait_for(&first, "loaded");
    drop(first);
    (cache, cache_arg)
}

#[tokio::test]
async fn a_damaged_compile_cache_costs_a_compile_and_nothing_else() {
    let (cache, cache_arg) = hello_cached();
    // The native code and every compiled function: garbage, as a full disk could leave.
    let functions = files_under(&cache.path().join("functions"));
    assert!(!functions.is_empty(), "the function cache was written");
    for file in files_under(cache.path()) {
        std::fs::write(&file, b"not what was written").unwrap();
    }
    let second = Host::run(&example("hello"), &["--cache-dir", &cache_arg]);
    wait_for(&second, "loaded");
    assert!(second.log().contains("compiled now"), "{}", second.log());
    let (status, body) = get_json(&second.url("/?name=Ada"), None).await;
    assert_eq!((status, body), (200, json!({"message": "Hello, Ada!"})));
}

#[tokio::test]
async fn a_restart_serves_the_cached_code_without_compiling() {
    let (_cache, cache_arg) = hello_cached();
    // The restart maps the code (and reads the manifest) while its engine is built.
    let second = Host::run(&example("hello"), &["--cache-dir", &cache_arg]);
    wait_for(&second, "loaded");
    assert!(
        second.log().contains("native code from the cache"),
        "{}",
        second.log()
    );
    let (status, body) = get_json(&second.url("/?name=Ada"), None).await;
    assert_eq!((status, body), (200, json!({"message": "Hello, Ada!"})));
    assert_eq!(
        common::try_metric(&second, "wasmhost_cache_hits_total").await,
        Some(1.0)
    );
    assert_eq!(
        common::try_metric(&second, "wasmhost_compiles_total").await,
        Some(0.0)
    );
}

#[test]
fn build_prints_the_component_path() {
    let dir = common::root().join("examples/hello");
    let (code, out) = wasmhost(&["build", &dir.display().to_string()]);
    assert_eq!(code, 0, "{out}");
    let last = out
        .lines()
        .rev()
        .find(|l| l.ends_with(".wasm"))
        .expect("a .wasm path");
    assert!(std::path::Path::new(last).is_file(), "{last}");
}

fn wait_for(host: &Host, needle: &str) {
    for _ in 0..100 {
        if host.log().contains(needle) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("never saw {needle:?} in {}", host.log());
}
