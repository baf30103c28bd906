//! `wasmhost new`: every template builds and serves as it is, with `wasmhost run`.
//! Rust templates build in the examples' target directory (their dependencies are already
//! compiled there, the same versions in the same release profile); Python templates
//! use the tests' shared componentize-py tools directory.

mod common;

use std::path::{Path, PathBuf};

use common::python::{python_available, tools_home};
use common::{Host, client, run_cli, shared_cache};
use serde_json::{Value, json};

/// The environment of every command here: the tests' tools directory (where `new`
/// writes the SDK and `build` keeps componentize-py) and one cargo target directory.
fn env() -> Vec<(&'static str, String)> {
    vec![
        ("XDG_CACHE_HOME", tools_home().display().to_string()),
        // The examples' target directory: the templates' dependencies (same versions,
        // same release profile) are compiled there already.
        (
            "CARGO_TARGET_DIR",
            common::root().join("examples/target").display().to_string(),
        ),
    ]
}

fn cli(args: &[&str]) -> (i32, String) {
    let env = env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_cli(args, &env)
}

/// `wasmhost new <template> <parent>/<name>`; returns the directory.
fn new(template: &str, parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    let (code, out) = cli(&["new", template, &dir.display().to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("next: wasmhost run"), "{out}");
    dir
}

/// `wasmhost run <target> --port 0 <extra>`, once `wasmhost build <target>` has built
/// it (the first Rust build compiles the SDK, longer than `Host` waits for a URL).
fn run(target: &Path, extra: &[&str]) -> Host {
    let (code, out) = cli(&["build", &target.display().to_string()]);
    assert_eq!(code, 0, "{out}");
    let mut args = vec![
        "run".to_string(),
        target.display().to_string(),
        "--port".into(),
        "0".into(),
        "--cache-dir".into(),
        shared_cache().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let env = env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Host::start_with_env(&args, &env)
}

async fn get(host: &Host, path: &str) -> (u16, String) {
    let r = client().get(host.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(host: &Host, path: &str, body: &Value) -> (u16, String) {
    let r = client()
        .post(host.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn the_template_list_names_every_template() {
    let (code, out) = cli(&["new", "--list"]);
    assert_eq!(code, 0, "{out}");
    for t in [
        "endpoint",
        "asgi",
        "wsgi",
        "function",
        "class",
        "gpu",
        "python-endpoint",
        "flask",
        "starlette",
        "python-function",
    ] {
        assert!(out.lines().any(|l| l.starts_with(t)), "{t} in {out}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = cli(&["new", "nope", &dir.path().join("x").display().to_string()]);
    assert_ne!(code, 0);
    assert!(out.contains("no template named \"nope\""), "{out}");
    let (code, out) = cli(&["new", "endpoint", &dir.path().display().to_string()]);
    assert_eq!(code, 0, "an empty directory is fine: {out}");
    let (code, out) = cli(&["new", "endpoint", &dir.path().display().to_string()]);
    assert_ne!(code, 0, "a second time the directory is not empty");
    assert!(out.contains("not empty"), "{out}");
}

#[tokio::test]
async fn every_rust_template_builds_and_serves() {
    let dir = tempfile::tempdir().unwrap();

    let host = run(&new("endpoint", dir.path(), "greeter"), &[]);
    let (status, body) = get(&host, "/?name=Ann").await;
    assert_eq!(
        (status, json(&body)),
        (200, json!({"message": "Hello, Ann!"}))
    );
    assert!(common::wait_log(&host, "greeting Ann"));
    drop(host);

    let host = run(&new("asgi", dir.path(), "asgi-demo"), &[]);
    let r = client().get(host.url("/items/7")).send().await.unwrap();
    assert_eq!(r.headers()["x-app"], "asgi-demo");
    assert_eq!(json(&r.text().await.unwrap()), json!({"item_id": 7}));
    let (status, body) = post(&host, "/items", &json!({"a": 1})).await;
    assert_eq!((status, json(&body)), (201, json!({"created": {"a": 1}})));
    drop(host);

    let host = run(&new("wsgi", dir.path(), "wsgi-demo"), &[]);
    assert_eq!(
        get(&host, "/hello/Ann").await,
        (200, "Hello, Ann!".to_string())
    );
    drop(host);

    let host = run(&new("class", dir.path(), "counter-demo"), &[]);
    get(&host, "/").await;
    let (status, body) = get(&host, "/").await;
    assert_eq!(
        (status, json(&body)),
        (200, json!({"count": 2, "started": true}))
    );
    drop(host);

    let functions = new("function", dir.path(), "squares");
    let (code, out) = cli(&[
        "run",
        &functions.display().to_string(),
        "--function",
        "square",
        "--args",
        "[7]",
        "--cache-dir",
        &shared_cache().display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.trim() == "49"), "{out}");

    let gpu = new("gpu", dir.path(), "gpu-demo");
    let (code, why) = cli(&["gpu", "--gpu-fallback", "software"]);
    if code != 0 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Vulkan adapter: {why}"
        );
        eprintln!("NOTICE: the gpu template is only built here: no Vulkan adapter ({why})");
        let (code, out) = cli(&["build", &gpu.display().to_string()]);
        assert_eq!(code, 0, "{out}");
        return;
    }
    let host = run(&gpu, &["--gpu-fallback", "software"]);
    let (status, body) = post(&host, "/", &json!({"a": [1, 2], "b": [10, 20]})).await;
    assert_eq!((status, json(&body)), (200, json!({"sum": [11.0, 22.0]})));
}

/// The endpoint template leaves out the SDK's `apps` feature (its instances start faster);
/// a class written into it fails to build with a message that says what to add, and builds
/// and serves once it is added.
#[tokio::test]
async fn a_class_without_the_sdks_apps_feature_is_a_clear_build_error() {
    let dir = tempfile::tempdir().unwrap();
    let krate = new("endpoint", dir.path(), "classless");
    let class = include_str!("../host/templates/rust/class.rs").replace("{{name}}", "classless");
    std::fs::write(krate.join("src/lib.rs"), class).unwrap();
    let (code, out) = cli(&["build", &krate.display().to_string()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("`#[wasmhost::cls]` needs the SDK's `apps` feature"),
        "{out}"
    );
    let manifest = krate.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains(", default-features = false"), "{text}");
    std::fs::write(&manifest, text.replace(", default-features = false", "")).unwrap();
    let host = run(&krate, &[]);
    get(&host, "/").await;
    let (status, body) = get(&host, "/").await;
    assert_eq!(
        (status, json(&body)),
        (200, json!({"count": 2, "started": true}))
    );
}

#[tokio::test]
async fn every_python_template_builds_and_serves() {
    if !python_available("every_python_template_builds_and_serves") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    let app = new("python-endpoint", dir.path(), "py-greeter").join("app.py");
    let host = run(&app, &[]);
    let (status, body) = get(&host, "/?name=Ann").await;
    assert_eq!(
        (status, json(&body)),
        (200, json!({"message": "Hello, Ann!"}))
    );
    drop(host);

    let app = new("flask", dir.path(), "flask-demo").join("app.py");
    let host = run(&app, &[]);
    assert_eq!(
        get(&host, "/hello/Ann").await,
        (200, "Hello, Ann!".to_string())
    );
    let (status, body) = get(&host, "/").await;
    assert_eq!(
        (status, json(&body)),
        (200, json!({"app": "flask-demo", "status": "ok"}))
    );
    drop(host);

    let app = new("starlette", dir.path(), "starlette-demo").join("app.py");
    let host = run(&app, &[]);
    let (status, body) = get(&host, "/items/7").await;
    assert_eq!((status, json(&body)), (200, json!({"item_id": 7})));
    let (status, body) = get(&host, "/events").await;
    assert_eq!(status, 200);
    assert!(body.contains("data: 2"), "{body}");
    drop(host);

    let app = new("python-function", dir.path(), "py-squares").join("app.py");
    let (code, out) = cli(&[
        "run",
        &app.display().to_string(),
        "--function",
        "sum_of_squares",
        "--args",
        "[4]",
        "--cache-dir",
        &shared_cache().display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.trim() == "14"), "{out}");
}
