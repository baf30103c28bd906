//! Functions end to end on a real server: invoke, spawn, map, retries, timeouts,
//! cancellation, 303 long requests, job queues from guests, schedules, secrets,
//! volumes (durability across `kill -9` is in crash.rs).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Api, admin_token, client, example, server, visit, wasmhost_remote};
use serde_json::{Value, json};

/// Deploys `example` as `app` and returns its functions' ids by name.
async fn deploy(api: &Api<'_>, example_name: &str, app: &str) -> HashMap<String, String> {
    let wasm = example(example_name).display().to_string();
    let (code, out) = wasmhost_remote(api.host, &api.token, &["deploy", &wasm, "--name", app]);
    assert_eq!(code, 0, "{out}");
    api.function_ids(app).await
}

async fn wait_final(api: &Api<'_>, call_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let call = api.get(&format!("/function-calls/{call_id}?wait=5")).await;
        if !matches!(call["status"].as_str(), Some("pending" | "running"))
            || Instant::now() > deadline
        {
            return call;
        }
    }
}

#[tokio::test]
async fn invoke_spawn_map_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let fns = deploy(&api, "functions", "fn-app").await;
    let sq = &fns["square"];
    let post = reqwest::Method::POST;

    let (status, r) = api
        .call(
            post.clone(),
            &format!("/functions/{sq}/invocations"),
            Some(json!({"args": [7]})),
        )
        .await;
    assert_eq!(
        (status, &r["status"], &r["result"]),
        (200, &json!("success"), &json!(49)),
        "{r}"
    );
    assert!(r["call_id"].as_str().unwrap().starts_with("fc-"));
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{sq}/invocations"),
            Some(json!({"kwargs": {"x": 8}})),
        )
        .await;
    assert_eq!(r["result"], 64);
    // Input that does not fit: wrong type (found by the guest), too many args (by the host).
    let (status, r) = api
        .call(
            post.clone(),
            &format!("/functions/{sq}/invocations"),
            Some(json!({"args": ["x"]})),
        )
        .await;
    assert_eq!(status, 422, "{r}");
    assert_eq!(r["detail"][0]["loc"], json!(["args", 0]), "{r}");
    let (status, r) = api
        .call(
            post.clone(),
            &format!("/functions/{sq}/spawn"),
            Some(json!({"args": [1, 2]})),
        )
        .await;
    assert_eq!(status, 422, "{r}");
    let (status, _) = api
        .call(
            post.clone(),
            "/functions/fu-nope/invocations",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
    // kwargs by name, optional parameters.
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["echo_args"]),
            Some(json!({"args": [1], "kwargs": {"b": "x"}})),
        )
        .await;
    assert_eq!(r["status"], "success", "{r}");

    // Spawn, then poll.
    let (status, s) = api
        .call(
            post.clone(),
            &format!("/functions/{sq}/spawn"),
            Some(json!({"args": [9]})),
        )
        .await;
    assert_eq!(status, 202, "{s}");
    let call = wait_final(&api, s["call_id"].as_str().unwrap()).await;
    assert_eq!(
        (&call["status"], &call["result"], &call["function_id"]),
        (&json!("success"), &json!(81), &json!(sq))
    );
    let (status, _) = api
        .call(
            reqwest::Method::GET,
            "/function-calls/fc-does-not-exist",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let listed = api.get(&format!("/functions/{sq}/invocations")).await;
    assert!(listed["data"].as_array().unwrap().len() >= 3, "{listed}");

    // Map: 100 inputs in order; a bad input fails alone.
    let inputs: Vec<Value> = (0..100).map(|i| json!([i])).collect();
    let (_, m) = api
        .call(
            post.clone(),
            &format!("/functions/{sq}/map"),
            Some(json!({"inputs": inputs})),
        )
        .await;
    let want: Vec<Value> = (0..100).map(|i| json!(i * i)).collect();
    assert_eq!(m["results"], json!(want));
    let (_, m) = api
        .call(
            post.clone(),
            &format!("/functions/{sq}/map"),
            Some(json!({"inputs": [[2], ["bad"], [4]]})),
        )
        .await;
    assert_eq!(m["results"], json!([4, null, 16]), "{m}");
    assert_eq!(m["errors"][0]["index"], 1, "{m}");

    // Map as a stream of server-sent events.
    let body = client()
        .post(srv.url(&format!("/v1/functions/{sq}/map?stream=true")))
        .bearer_auth(&api.token)
        .json(&json!({"inputs": (0..20).map(|i| json!([i])).collect::<Vec<_>>()}))
        .send()
        .await
        .unwrap();
    assert_eq!(body.headers()["content-type"], "text/event-stream");
    let text = body.text().await.unwrap();
    let mut seen: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["result"].as_i64())
        .collect();
    seen.sort();
    assert_eq!(seen, (0..20).map(|i| i * i).collect::<Vec<i64>>());
    assert!(text.contains("event: done"), "{text}");

    // The CLI: call, spawn + call-result, map from JSON Lines.
    let (code, out) = wasmhost_remote(
        &srv,
        &api.token,
        &["call", "fn-app.square", "--args", "[12]"],
    );
    assert_eq!((code, out.trim()), (0, "144"), "{out}");
    let (code, out) = wasmhost_remote(
        &srv,
        &api.token,
        &["spawn", "fn-app.square", "--kwargs", r#"{"x": 5}"#],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = wasmhost_remote(&srv, &api.token, &["call-result", out.trim(), "--wait"]);
    assert_eq!((code, out.trim()), (0, "25"), "{out}");
    let jsonl = dir.path().join("inputs.jsonl");
    std::fs::write(&jsonl, "[1]\n[2]\n{\"x\": 3}\n").unwrap();
    let (code, out) = wasmhost_remote(
        &srv,
        &api.token,
        &[
            "map",
            "fn-app.square",
            "--inputs",
            &jsonl.display().to_string(),
        ],
    );
    assert_eq!((code, out.trim()), (0, "1\n4\n9"), "{out}");
    let (code, out) = wasmhost_remote(
        &srv,
        &api.token,
        &["call", "fn-app.fails", "--args", r#"["nope"]"#],
    );
    assert!(code != 0 && out.contains("nope"), "{out}");
}

#[tokio::test]
async fn retries_timeouts_and_cancellation() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let fns = deploy(&api, "functions", "fn-app").await;
    let post = reqwest::Method::POST;

    // Fails twice, succeeds on the third attempt; the backoff doubles (200 ms, 400 ms).
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["flaky"]),
            None,
        )
        .await;
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["result"], "succeeded on attempt 3");
    let attempts = r["attempts"].as_array().unwrap();
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "success"]);
    let delays: Vec<&Value> = attempts.iter().map(|a| &a["retry_delay_ms"]).collect();
    assert_eq!(delays, [&json!(200), &json!(400), &Value::Null]);

    // Every attempt times out: a failure after 2 attempts, each recorded.
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["sleepy"]),
            Some(json!({"args": [30]})),
        )
        .await;
    assert_eq!(r["status"], "failure", "{r}");
    assert_eq!(r["error"]["type"], "timeout");
    let outcomes: Vec<&Value> = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["outcome"])
        .collect();
    assert_eq!(outcomes, [&json!("timeout"), &json!("timeout")]);

    // A failing function reports the guest's message.
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["fails"]),
            Some(json!({"args": ["no luck"]})),
        )
        .await;
    assert_eq!(
        (r["status"].as_str(), r["error"]["message"].as_str()),
        (Some("failure"), Some("no luck")),
        "{r}"
    );

    // Cancelling a running call terminates it.
    let (_, s) = api
        .call(
            post.clone(),
            &format!("/functions/{}/spawn", fns["slow"]),
            Some(json!({"args": [30]})),
        )
        .await;
    let id = s["call_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, c) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/function-calls/{id}"),
            None,
        )
        .await;
    assert_eq!(
        (status, c["status"].as_str()),
        (200, Some("terminated")),
        "{c}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        api.get(&format!("/function-calls/{id}")).await["status"],
        "terminated"
    );
}

#[tokio::test]
async fn long_web_requests_answer_303_then_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &["--request-timeout", "1s"]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    deploy(&api, "functions", "fn-app").await;
    let host = "main--fn-app-slow-web.localhost";
    // Quick calls answer directly.
    let (status, body) = visit(&srv, host, "/?seconds=0.1", &[]).await;
    assert_eq!((status, body.as_str()), (200, r#"{"seconds":0.1}"#));
    let r = client()
        .get(srv.url("/?seconds=2.5"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let mut location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/?seconds=2.5&__wasmhost_call_id=wc-"),
        "{location}"
    );
    let mut hops = 0;
    let body = loop {
        let r = client()
            .get(srv.url(&location))
            .header("host", host)
            .send()
            .await
            .unwrap();
        if r.status() == 303 {
            hops += 1;
            location = r.headers()["location"].to_str().unwrap().to_owned();
            assert!(hops < 10);
            continue;
        }
        assert_eq!(r.status(), 200);
        break r.text().await.unwrap();
    };
    assert_eq!(body, r#"{"seconds":2.5}"#);
    assert!(hops >= 1, "the second wait should also have run out");
    // A collected result is gone; an unknown id is a 404.
    assert_eq!(visit(&srv, host, &location, &[]).await.0, 404);
}

#[tokio::test]
async fn job_queue_schedules_secrets_and_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = server(&data, &[]);
    let token = admin_token(&data);
    let api = Api {
        host: &srv,
        token: token.clone(),
    };
    let fns = deploy(&api, "jobs", "jobs").await;

    // Job queue from inside a guest: submit spawns, result answers 202 then 200.
    let r = client()
        .post(srv.url("/"))
        .header("host", "main--jobs-submit.localhost")
        .json(&json!({"n": 21}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let call_id = r.json::<Value>().await.unwrap()["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = visit(
        &srv,
        "main--jobs-result.localhost",
        &format!("/?call_id={call_id}"),
        &[],
    )
    .await;
    assert_eq!(status, 202);
    let mut done = None;
    for _ in 0..50 {
        let (status, body) = visit(
            &srv,
            "main--jobs-result.localhost",
            &format!("/?call_id={call_id}"),
            &[],
        )
        .await;
        if status == 200 {
            done = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done.as_deref(), Some(r#"{"result":42}"#));

    // A period(1s) schedule fires, recorded as calls.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let ticks = api
        .get(&format!("/functions/{}/invocations", fns["tick"]))
        .await;
    let ticks = ticks["data"].as_array().unwrap();
    assert!(ticks.len() >= 2, "{ticks:?}");
    assert!(ticks.iter().all(|c| c["source"] == "schedule"));

    // Secrets reach the guest as environment variables; values never show.
    let post = reqwest::Method::POST;
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["whoami"]),
            None,
        )
        .await;
    assert_eq!(r["status"], "failure", "missing secret: {r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("demo-secret"),
        "{r}"
    );
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &[
            "secret",
            "create",
            "demo-secret",
            "GREETING=s3cr3t-hello",
            "UNUSED=sealed-value-0042",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["whoami"]),
            None,
        )
        .await;
    assert_eq!(r["result"], "s3cr3t-hello", "{r}");
    let listed = api.get("/secrets").await;
    assert_eq!(listed["data"][0]["keys"], json!(["GREETING", "UNUSED"]));
    assert!(!listed.to_string().contains("s3cr3t"));
    assert!(
        !srv.log().contains("s3cr3t"),
        "a secret value reached the log"
    );
    // Sealed at rest: a value no call returned is nowhere in the state file (whoami's
    // result is, in its call record), and the key file is private.
    let state = std::fs::read(data.join("state.redb")).unwrap();
    assert!(!state.windows(17).any(|w| w == b"sealed-value-0042"));
    let key = std::fs::metadata(data.join("secrets.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );

    // Volumes: written by one call, read by another, moved with the CLI, sandboxed.
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["write_note"]),
            Some(json!({"args": ["a.txt", "hello volume"]})),
        )
        .await;
    assert_eq!(r["status"], "success", "{r}");
    let (code, out) = wasmhost_remote(&srv, &token, &["volume", "get", "notes", "a.txt"]);
    assert_eq!((code, out.as_str()), (0, "hello volume"));
    let local = dir.path().join("b.txt");
    std::fs::write(&local, "from the CLI").unwrap();
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &[
            "volume",
            "put",
            "notes",
            &local.display().to_string(),
            "sub/b.txt",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = wasmhost_remote(&srv, &token, &["volume", "ls", "notes"]);
    assert!(
        code == 0 && out.contains("a.txt") && out.contains("sub"),
        "{out}"
    );
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["read_note"]),
            Some(json!({"args": ["sub/b.txt"]})),
        )
        .await;
    assert_eq!(r["result"], "from the CLI", "{r}");
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["escape"]),
            None,
        )
        .await;
    for (path, attempt) in r["result"].as_object().unwrap() {
        assert_eq!(attempt["refused"], true, "{path} escaped the volume: {r}");
    }
    std::os::unix::fs::symlink("/etc/passwd", data.join("volumes/notes/evil")).unwrap();
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["read_note"]),
            Some(json!({"args": ["evil"]})),
        )
        .await;
    assert_eq!(
        r["status"], "failure",
        "a symlink led out of the volume: {r}"
    );
    let (status, _) = api
        .call(
            reqwest::Method::GET,
            "/volumes/notes/files/../../state.redb",
            None,
        )
        .await;
    assert_ne!(status, 200);

    // After a restart the data is still there; stopping the app stops its schedule.
    drop(srv);
    let srv = server(&data, &[]);
    let api = Api {
        host: &srv,
        token: token.clone(),
    };
    let (_, r) = api
        .call(
            post.clone(),
            &format!("/functions/{}/invocations", fns["read_note"]),
            Some(json!({"args": ["a.txt"]})),
        )
        .await;
    assert_eq!(r["result"], "hello volume", "{r}");
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "stop", "jobs"]);
    assert_eq!(code, 0, "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = api
        .get(&format!(
            "/functions/{}/invocations?limit=1000",
            fns["tick"]
        ))
        .await["data"]
        .as_array()
        .unwrap()
        .len();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let after = api
        .get(&format!(
            "/functions/{}/invocations?limit=1000",
            fns["tick"]
        ))
        .await["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a stopped app's schedule kept running");
}

#[tokio::test]
async fn a_bad_cron_expression_is_refused_at_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let (status, body) = api
        .upload(std::fs::read(example("bad-schedule")).unwrap(), "name=bad")
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(r#""cron(61 * * * *)""#),
        "{body}"
    );
    assert_eq!(api.get("/apps").await["data"], json!([]));
}
