//! Operating a server: per-call logs (stored, followed live, secrets kept out), app
//! history and rollback, through the real server and CLI.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Api, Host, admin_token, client, example, server, visit, wasmhost_remote};
use serde_json::{Value, json};

/// The host name of a web endpoint's URL.
fn host_of(function: &Value) -> String {
    let url = function["web_url"].as_str().expect("a web URL");
    let authority = url.trim_start_matches("http://").split('/').next().unwrap();
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_owned()
}

/// A `wasmhost` command left running (e.g. `logs --follow`), its stdout collected.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(host: &Host, token: &str, args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmhost"))
            .args(args)
            .env("WASMHOST_SERVER", host.url(""))
            .env("WASMHOST_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("wasmhost runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (out, sink) = (child.stdout.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, lines }
    }

    /// Waits (up to 20 s) until a printed line contains `needle`.
    fn wait_for(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines' texts of a `/logs` answer.
fn texts(logs: &Value) -> Vec<String> {
    logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["stream"].as_str().unwrap(),
                l["text"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn call_logs_are_kept_followed_live_and_free_of_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let token = admin_token(dir.path());
    let api = Api {
        host: &srv,
        token: token.clone(),
    };
    let fns = api.deploy_example("functions", "logs-app").await;
    let app_id = api.app_id("logs-app").await;
    let id = |name: &str| fns[name]["function_id"].as_str().unwrap().to_owned();
    let secret = "tok-9f8e7d6c5b4a";
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &[
            "secret",
            "create",
            "log-secret",
            &format!("LOG_TOKEN={secret}"),
        ],
    );
    assert_eq!(code, 0, "{out}");

    let follower = Running::start(&srv, &token, &["logs", "logs-app", "--follow"]);
    let post = reqwest::Method::POST;
    let (status, call) = api.invoke(&id("chatty"), json!([3])).await;
    assert_eq!(
        (status, &call["status"]),
        (200, &json!("success")),
        "{call}"
    );
    let call_id = call["call_id"].as_str().unwrap();
    assert!(
        follower.wait_for("chatty line 2"),
        "the follower printed:\n{}",
        follower.text()
    );

    // A long call's lines reach followers while it runs.
    let (status, long) = api
        .call(
            post.clone(),
            &format!("/functions/{}/spawn", id("progress")),
            Some(json!({"args": [3, 1.5]})),
        )
        .await;
    assert_eq!(status, 202, "{long}");
    let long_id = long["call_id"].as_str().unwrap();
    assert!(
        follower.wait_for(&format!("{long_id} stdout step 0")),
        "{}",
        follower.text()
    );
    let running = api.get(&format!("/function-calls/{long_id}")).await;
    assert_eq!(
        running["status"], "running",
        "step 0 arrived before the call ended"
    );
    assert!(
        follower.wait_for(&format!("{long_id} stdout step 2")),
        "{}",
        follower.text()
    );

    let logs = api.get(&format!("/function-calls/{call_id}/logs")).await;
    let lines = texts(&logs);
    for expected in [
        "event call started",
        "event attempt 1 started",
        "stdout chatty line 0",
        "stdout chatty line 2",
        "stderr chatty: a line on stderr",
        "stdout chatty: the token is [redacted]",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected:?} in {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("event attempt 1 succeeded in ")),
        "{lines:#?}"
    );
    assert!(
        logs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["call_id"] == call_id && l["function"] == "chatty")
    );

    // Timeouts and retries, then a trap with its message.
    let (_, r) = api.invoke(&id("sleepy"), json!([5])).await;
    assert_eq!(r["status"], "failure", "{r}");
    let lines = texts(
        &api.get(&format!(
            "/function-calls/{}/logs",
            r["call_id"].as_str().unwrap()
        ))
        .await,
    );
    let timeouts = lines
        .iter()
        .filter(|l| {
            l.starts_with("event attempt") && l.contains("failed (timeout): timed out after 1s")
        })
        .count();
    assert_eq!(timeouts, 2, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("event retrying in 10 ms (attempt 2")),
        "{lines:#?}"
    );
    let (_, r) = api.invoke(&id("boom"), json!(["kaboom-7"])).await;
    assert_eq!(r["status"], "failure", "{r}");
    let lines = texts(
        &api.get(&format!(
            "/function-calls/{}/logs",
            r["call_id"].as_str().unwrap()
        ))
        .await,
    );
    assert!(
        lines.contains(&"stdout boom: about to panic".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("event attempt 1 failed (trap)") && l.contains("kaboom-7")),
        "{lines:#?}"
    );

    // A spawned call's lines, and a call that prints more than its log keeps.
    let (status, spawned) = api
        .call(
            post.clone(),
            &format!("/functions/{}/spawn", id("chatty")),
            Some(json!({"args": [6000]})),
        )
        .await;
    assert_eq!(status, 202, "{spawned}");
    let spawned_id = spawned["call_id"].as_str().unwrap();
    let done = api
        .get(&format!("/function-calls/{spawned_id}?wait=30"))
        .await;
    assert_eq!(done["status"], "success", "{done}");
    let logs = api.get(&format!("/function-calls/{spawned_id}/logs")).await;
    let kept: usize = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap().len())
        .sum();
    assert!(kept <= 64 * 1024 + 100, "{kept} bytes kept");
    // Cut where the guest's output is captured or where the call's log is kept: said either way.
    assert!(
        texts(&logs)
            .iter()
            .any(|l| l.contains("[log truncated") || l.contains("bytes of output dropped]")),
        "no truncation marker"
    );

    // A web endpoint's output and failure are the app's lines, without a call id.
    let mis = api.deploy_example("misbehave", "mis-app").await;
    let (status, _) = visit(&srv, &host_of(&mis["trap"]), "/", &[]).await;
    assert_eq!(status, 500);
    let mis_id = api.app_id("mis-app").await;
    let web = api.get(&format!("/apps/{mis_id}/logs?function=trap")).await;
    let web_lines = texts(&web);
    assert!(
        web_lines
            .iter()
            .any(|l| l.starts_with("event request failed")
                && l.contains("misbehave: trap on purpose")),
        "{web_lines:#?}"
    );
    assert!(
        web["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["call_id"].is_null())
    );

    // The app's log by function and time, through the API and the CLI.
    let only_boom = api.get(&format!("/apps/{app_id}/logs?function=boom")).await;
    assert!(
        only_boom["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["function"] == "boom")
    );
    assert!(!only_boom["data"].as_array().unwrap().is_empty());
    let future = api
        .get(&format!("/apps/{app_id}/logs?since=2999-01-01T00:00:00Z"))
        .await;
    assert_eq!(future["data"], json!([]));
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &["logs", "logs-app", "--function", "boom", "--since", "10m"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("boom: about to panic") && !out.contains("chatty"),
        "{out}"
    );
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &["logs", "logs-app", "--since", "last tuesday"],
    );
    assert_ne!(code, 0);
    assert!(out.contains("neither a time"), "{out}");
    for (path, want) in [
        ("/function-calls/fc-nope/logs", 404),
        ("/apps/ap-nope/logs", 404),
        (&*format!("/apps/{app_id}/logs?limit=0"), 400),
        (&*format!("/apps/{app_id}/logs?follow=yes"), 400),
    ] {
        let (status, body) = api.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, want, "{path}: {body}");
    }

    // The secret's value is nowhere: not in the stored lines, the live stream, the
    // host's own log.
    let everything = api.get(&format!("/apps/{app_id}/logs?limit=10000")).await;
    assert!(!everything.to_string().contains(secret));
    assert!(follower.wait_for("the token is [redacted]"));
    assert!(!follower.text().contains(secret));
    assert!(common::wait_log(&srv, "the token is [redacted]"));
    assert!(
        !srv.log().contains(secret),
        "a secret value reached the host's log"
    );
}

#[tokio::test]
async fn the_host_logs_json_lines_when_asked() {
    let host = Host::run(&example("hello"), &["--log-format", "json"]);
    let r = client().get(host.url("/")).send().await.unwrap();
    assert!(r.status().is_success());
    let lines = host.output.lock().unwrap().clone();
    let json_lines: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    assert!(
        json_lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"].is_string()),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn history_lists_versions_and_rollback_switches_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let token = admin_token(dir.path());
    let api = Api {
        host: &srv,
        token: token.clone(),
    };
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "rollback", "hist"]);
    assert_ne!(code, 0, "no such app yet: {out}");
    let v1 = api.deploy_example("hello", "hist").await;
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "rollback", "hist"]);
    assert_ne!(code, 0);
    assert!(out.contains("no version before 1"), "{out}");
    let v2 = api.deploy_example("functions", "hist").await;
    let app_id = api.app_id("hist").await;

    let (code, out) = wasmhost_remote(&srv, &token, &["app", "history", "hist"]);
    assert_eq!(code, 0, "{out}");
    let admin_id = token.split(':').next().unwrap();
    assert!(out.contains(&format!("admin ({admin_id})")), "{out}");
    let current: Vec<&str> = out.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(current.len(), 1, "{out}");
    assert!(current[0].starts_with("* 2 "), "{out}");

    // A slow request on version 2 is in flight while the app rolls back to version 1.
    let slow_host = host_of(&v2["slow_web"]);
    let slow = {
        let url = srv.url("/?seconds=3");
        tokio::spawn(async move {
            let r = client()
                .get(url)
                .header("host", slow_host)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let metrics = srv.url("/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = client()
            .get(&metrics)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let busy = text.lines().any(|l| {
            l.starts_with("wasmhost_function_instances_live{")
                && l.contains("function=\"slow_web\"")
                && l.ends_with(" 1")
        });
        if busy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow request never started:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "rollback", "hist"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("version 3"), "{out}");
    let (status, body) = slow.await.unwrap();
    assert_eq!(
        status, 200,
        "the in-flight request finished on version 2: {body}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["seconds"],
        3.0
    );
    let (status, _) = visit(&srv, &host_of(&v2["slow_web"]), "/?seconds=0", &[]).await;
    assert_eq!(status, 404, "version 3 serves hello, which has no slow_web");
    let hello_host = host_of(v1.values().next().unwrap());
    let (status, _) = visit(&srv, &hello_host, "/", &[]).await;
    assert_eq!(status, 200);

    let versions = api.get(&format!("/apps/{app_id}/versions")).await;
    let list = versions["data"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{versions}");
    assert_eq!(list[0]["version"], 3);
    assert_eq!(list[0]["rollback_of"], 1);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["digest"], list[2]["digest"]);
    assert_eq!(list[0]["deployed_by"]["token_id"], admin_id);

    // Forward again to a named version; bad versions are refused and change nothing.
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "rollback", "hist", "--version", "2"]);
    assert_eq!(code, 0, "{out}");
    let (status, _) = visit(&srv, &host_of(&v2["slow_web"]), "/?seconds=0", &[]).await;
    assert_eq!(status, 200);
    for (body, want) in [
        (json!({"version": 9}), 404),
        (json!({"version": 4}), 409),
        // 4.0 is version 4 to a JSON client; 2.5 is no version at all.
        (json!({"version": 4.0}), 409),
        (json!({"version": 2.5}), 400),
        (json!({"version": "x"}), 422),
    ] {
        let (status, r) = api
            .call(
                reqwest::Method::POST,
                &format!("/apps/{app_id}/rollback"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, want, "{body}: {r}");
    }
    assert_eq!(api.get(&format!("/apps/{app_id}")).await["version"], 4);

    // History survives a restart.
    drop(srv);
    let srv = server(dir.path(), &[]);
    let (code, out) = wasmhost_remote(&srv, &token, &["app", "history", "hist"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("* 4 ") && l.contains("rollback to 2")),
        "{out}"
    );
}
