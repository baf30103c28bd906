//! `wasmhost server` end to end: tokens, deploys over REST, Modal-style URLs, labels,
//! proxy auth, bad uploads, restarts.

mod common;

use std::path::Path;

use common::{Api, Host, admin_token, client, example, server, visit, wasmhost_remote};
use serde_json::json;

#[tokio::test]
async fn deploy_route_label_and_persist_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = server(&data, &[]);
    let token = admin_token(&data);
    let meta = std::fs::metadata(data.join("admin-token")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    // Auth: none, malformed and wrong tokens are 401.
    for auth in [None, Some("nope"), Some("tk-x:y")] {
        let mut req = client().get(srv.url("/v1/apps"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "{auth:?}");
    }

    // Deploy with the CLI: it prints the URL.
    let hello = example("hello").display().to_string();
    let (code, out) = wasmhost_remote(&srv, &token, &["deploy", &hello, "--name", "hello-app"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "http://main--hello-app-hello.localhost:{}/",
            srv.port
        )),
        "{out}"
    );
    let (status, body) = visit(&srv, "main--hello-app-hello.localhost", "/?name=Ada", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"message":"Hello, Ada!"}"#)
    );

    // Redeploying the same file is a no-op.
    let (code, out) = wasmhost_remote(&srv, &token, &["deploy", &hello, "--name", "hello-app"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unchanged"), "{out}");

    // The API lists it.
    let api = Api {
        host: &srv,
        token: token.clone(),
    };
    let app_id = api.app_id("hello-app").await;
    let app = api.get(&format!("/apps/{app_id}")).await;
    assert_eq!(
        (app["state"].as_str(), app["version"].as_u64()),
        (Some("deployed"), Some(1))
    );
    let fns = api.get(&format!("/apps/{app_id}/functions")).await;
    let f = &fns["data"][0];
    assert_eq!(f["name"], "hello");
    let web_url = f["web_url"].as_str().unwrap();
    assert!(
        web_url.starts_with("http://main--hello-app-hello.localhost:"),
        "{web_url}"
    );
    let function_id = f["function_id"].as_str().unwrap().to_string();
    assert_eq!(
        api.get(&format!("/functions/{function_id}")).await["web_url"],
        web_url
    );
    let eps = api.get("/web-endpoints").await;
    assert_eq!(eps["data"][0]["endpoint_id"], function_id.as_str());
    assert_eq!(eps["data"][0]["kind"], "fastapi_endpoint");
    let (code, out) = wasmhost_remote(&srv, &token, &["function", "list"]);
    assert!(code == 0 && out.contains(web_url), "{out}");
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "list"]);
    assert!(
        code == 0 && out.contains("hello-app") && out.contains("deployed"),
        "{out}"
    );
    let doc = api.get("/openapi.json").await;
    assert!(doc["paths"]["/web-endpoints/{endpoint_id}/labels"]["put"].is_object());

    // Label: set, reach, and a clash is a 409.
    let (status, _) = label(&api, &function_id, "greeter").await;
    assert_eq!(status, 204);
    let (status, body) = visit(&srv, "main--greeter.localhost", "/?name=Lab", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"message":"Hello, Lab!"}"#)
    );
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &[
            "deploy",
            &example("echo").display().to_string(),
            "--name",
            "echo-app",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let echo_fn = first_function(&api, "echo-app").await;
    let (status, body) = label(&api, &echo_fn, "greeter").await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = label(&api, &echo_fn, "No Way").await;
    assert_eq!(status, 400);

    // Unknown hosts are a 404 that says so.
    let (status, body) = visit(&srv, "main--nothing-here.localhost", "/", &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("main--nothing-here.localhost"), "{body}");

    // Restart: everything is back, and nothing is recompiled.
    drop(srv);
    let srv = server(&data, &[]);
    wait_for_log(&srv, "restored 2 deployed app(s)");
    assert!(
        !srv.log().contains("created an admin token"),
        "{}",
        srv.log()
    );
    // The log lines reach the log through a writer thread, after the startup message.
    wait_for_log(&srv, "(Hit)");
    let (status, body) = visit(&srv, "main--hello-app-hello.localhost", "/?name=Again", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"message":"Hello, Again!"}"#)
    );
    let (status, _) = visit(&srv, "main--greeter.localhost", "/", &[]).await;
    assert_eq!(status, 200);
    let api = Api {
        host: &srv,
        token: token.clone(),
    };
    assert_eq!(api.get("/apps").await["data"].as_array().unwrap().len(), 2);

    // Stopping an app takes its URLs down at once.
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "stop", "hello-app"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        visit(&srv, "main--hello-app-hello.localhost", "/", &[])
            .await
            .0,
        404
    );
    assert_eq!(
        visit(&srv, "main--greeter.localhost", "/", &[]).await.0,
        404
    );
    let app = api.get(&format!("/apps/{app_id}")).await;
    assert_eq!(app["state"], "stopped");
}

#[tokio::test]
async fn proxy_auth_custom_domains_and_new_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let token = admin_token(dir.path());
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &["deploy", &example("private").display().to_string()],
    );
    assert_eq!(code, 0, "{out}");
    let vault = "main--private-vault.localhost";
    assert_eq!(visit(&srv, vault, "/", &[]).await.0, 401);
    assert_eq!(
        visit(
            &srv,
            vault,
            "/",
            &[("wasmhost-key", "tk-nope"), ("wasmhost-secret", "bad")]
        )
        .await
        .0,
        401
    );
    // A token made with the CLI works as proxy-auth keys.
    let (code, out) = wasmhost_remote(&srv, &token, &["token", "create", "--name", "proxy"]);
    assert_eq!(code, 0, "{out}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
            .expect("field printed")
    };
    let (id, secret) = (field("token id:"), field("token secret:"));
    let (status, body) = visit(
        &srv,
        vault,
        "/",
        &[("wasmhost-key", &id), ("wasmhost-secret", &secret)],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"secret":"42"}"#));
    // The new token also works as a bearer token; listing never shows secrets.
    let api = Api {
        host: &srv,
        token: format!("{id}:{secret}"),
    };
    let tokens = api.get("/tokens").await;
    assert_eq!(tokens["data"].as_array().unwrap().len(), 2);
    assert!(!tokens.to_string().contains(&secret));
    // Custom domain and manifest label.
    for name in [
        "api.example.test",
        "main--status-page.localhost",
        "main--private-status.localhost",
    ] {
        let (status, body) = visit(&srv, name, "/", &[]).await;
        assert_eq!((status, body.as_str()), (200, "all systems go"), "{name}");
    }
}

/// Sets a web endpoint's label through the API; returns the status and body.
async fn label(api: &Api<'_>, function_id: &str, label: &str) -> (u16, serde_json::Value) {
    api.call(
        reqwest::Method::PUT,
        &format!("/web-endpoints/{function_id}/labels"),
        Some(json!({ "label": label })),
    )
    .await
}

/// The id of the first function the API lists for `app`.
async fn first_function(api: &Api<'_>, app: &str) -> String {
    let app_id = api.app_id(app).await;
    api.get(&format!("/apps/{app_id}/functions")).await["data"][0]["function_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Which app answers `name`: hello answers a GET, echo only takes POSTs.
async fn answering(srv: &Host, name: &str) -> &'static str {
    match visit(srv, name, "/", &[]).await.0 {
        200 => "hello-app",
        405 => "echo-app",
        other => panic!("{name} answered {other}"),
    }
}

/// A deploy, a stop or a label re-routes its own app; a host name two apps claim (here a
/// label equal to another app's generated name) stays with one of them, and goes to the
/// other when that one stops, and back when it returns.
#[tokio::test]
async fn a_name_two_apps_claim_passes_to_the_other_when_its_holder_stops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = server(&data, &[]);
    let token = admin_token(&data);
    let api = Api {
        host: &srv,
        token: token.clone(),
    };
    let deploy = |example_name: &str, app: &str| {
        let path = example(example_name).display().to_string();
        let (code, out) = wasmhost_remote(&srv, &token, &["deploy", &path, "--name", app]);
        assert_eq!(code, 0, "{out}");
    };
    let contested = "main--hello-app-hello.localhost";
    deploy("hello", "hello-app");
    deploy("echo", "echo-app");
    assert_eq!(answering(&srv, contested).await, "hello-app");
    let echo_fn = first_function(&api, "echo-app").await;
    let (status, body) = label(&api, &echo_fn, "hello-app-hello").await;
    assert_eq!(status, 204, "{body}");
    // An app deployed meanwhile is routed as usual.
    deploy("hello", "third");
    assert_eq!(
        answering(&srv, "main--third-hello.localhost").await,
        "hello-app"
    );

    let holder = answering(&srv, contested).await;
    let other = if holder == "hello-app" {
        "echo-app"
    } else {
        "hello-app"
    };
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "stop", holder]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(answering(&srv, contested).await, other);

    // The holder comes back: the name is contested again and one of them answers; the
    // other's stop hands it back.
    deploy(
        if holder == "hello-app" {
            "hello"
        } else {
            "echo"
        },
        holder,
    );
    let now = answering(&srv, contested).await;
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "stop", now]);
    assert_eq!(code, 0, "{out}");
    let last = answering(&srv, contested).await;
    assert_ne!(last, now);
    assert_eq!(
        answering(&srv, "main--third-hello.localhost").await,
        "hello-app"
    );
}

/// Every file under `dir` with its size, to prove a refused upload left nothing behind.
fn snapshot(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            }
            let name = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            // redb's file size moves with its own page management; its content is
            // checked through the API below.
            let size = if meta.is_dir() || name == "state.redb" {
                0
            } else {
                meta.len()
            };
            out.push((name, size));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn bad_uploads_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &["--max-upload-bytes", "300000"]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let before = snapshot(dir.path());
    let hello = std::fs::read(example("hello")).unwrap();
    let no_world = std::fs::read(example("no-world")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "text",
            b"not wasm at all\n".to_vec(),
            "name=text-app",
            422,
            "not a WebAssembly binary",
        ),
        (
            "core",
            b"\0asm\x01\0\0\0".to_vec(),
            "name=core-app",
            422,
            "core WebAssembly module",
        ),
        ("world", no_world, "name=cmd-app", 422, "does not serve"),
        (
            "truncated",
            hello[..hello.len() / 2].to_vec(),
            "name=cut-app",
            422,
            "invalid component",
        ),
        (
            "oversize",
            vec![0u8; 400_000],
            "name=big-app",
            413,
            "size limit",
        ),
        ("empty", Vec::new(), "name=empty-app", 400, "empty"),
        (
            "bad name",
            hello.clone(),
            "name=Not_DNS",
            400,
            "not DNS-safe",
        ),
    ];
    for (what, bytes, query, want, reason) in cases {
        let (status, body) = api.upload(bytes, query).await;
        assert_eq!(status, want, "{what}: {body}");
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(reason),
            "{what}: {body}"
        );
    }
    assert_eq!(api.get("/apps").await["data"], json!([]));
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a refused upload left files behind"
    );
    // The server still works.
    let (status, body) = api.upload(hello, "name=fine").await;
    assert_eq!(status, 201, "{body}");
}

fn wait_for_log(host: &Host, needle: &str) {
    for _ in 0..200 {
        if host.log().contains(needle) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("never saw {needle:?} in:\n{}", host.log());
}

#[tokio::test]
async fn serve_runs_an_ephemeral_app_on_the_server_and_reloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = server(&data, &[]);
    let token = admin_token(&data);
    let wasm = dir.path().join("app.wasm");
    std::fs::copy(example("hello"), &wasm).unwrap();
    let mut dev = Host::start(&[
        "serve".into(),
        wasm.display().to_string(),
        "--name".into(),
        "dev-app".into(),
        "--server".into(),
        srv.url(""),
        "--token".into(),
        token.clone(),
    ]);
    assert_eq!(dev.port, srv.port, "serve printed the server's URL");
    let (status, _) = visit(&srv, "main--dev-app-hello-dev.localhost", "/", &[]).await;
    assert_eq!(status, 200, "{}", dev.log());
    let api = Api { host: &srv, token };
    let app_id = api.app_id("dev-app").await;
    assert_eq!(
        api.get(&format!("/apps/{app_id}")).await["state"],
        "ephemeral"
    );

    // Replacing the component swaps it in.
    let replacement = dir.path().join("next.wasm");
    std::fs::copy(example("private"), &replacement).unwrap();
    std::fs::rename(&replacement, &wasm).unwrap();
    let mut reloaded = false;
    for _ in 0..100 {
        if visit(&srv, "main--dev-app-status-dev.localhost", "/", &[])
            .await
            .0
            == 200
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reloaded, "no reload:\n{}", dev.log());
    assert_eq!(
        visit(&srv, "main--dev-app-hello-dev.localhost", "/", &[])
            .await
            .0,
        404
    );

    // Ctrl-C removes the app.
    assert_eq!(dev.interrupt(), Some(0), "{}", dev.log());
    assert_eq!(api.get("/apps").await["data"], json!([]));
}
