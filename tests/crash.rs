//! `kill -9` of the real server at several points — mid-attempt, during deploys, while
//! spawns are acknowledged and results written, around scheduled runs — and what the
//! restarted server must show: no call lost, no half deploy, no leftovers, and attempts
//! cut short counted against the retries (a call that keeps killing its host fails),
//! while attempts cut short by an orderly stop (SIGTERM) are not.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Api, Host, admin_token, client, example, server, wasmhost_remote};
use serde_json::{Value, json};

/// Deploys `example` as `app` and returns its functions' ids by name.
async fn deploy(api: &Api<'_>, example_name: &str, app: &str) -> HashMap<String, String> {
    let wasm = example(example_name).display().to_string();
    let (code, out) = wasmhost_remote(api.host, &api.token, &["deploy", &wasm, "--name", app]);
    assert_eq!(code, 0, "{out}");
    functions_of(api, app).await
}

async fn functions_of(api: &Api<'_>, app: &str) -> HashMap<String, String> {
    api.function_ids(app).await
}

fn api<'a>(srv: &'a Host, token: &str) -> Api<'a> {
    Api {
        host: srv,
        token: token.to_owned(),
    }
}

async fn spawn(api: &Api<'_>, function_id: &str, args: Value) -> String {
    let (status, s) = api
        .call(
            reqwest::Method::POST,
            &format!("/functions/{function_id}/spawn"),
            Some(json!({ "args": args })),
        )
        .await;
    assert_eq!(status, 202, "{s}");
    s["call_id"].as_str().unwrap().to_owned()
}

/// Polls a call until `done` holds (60 s at most).
async fn wait_call(api: &Api<'_>, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let call = api.get(&format!("/function-calls/{id}")).await;
        if done(&call) {
            return call;
        }
        assert!(Instant::now() < deadline, "{id} never {what}: {call}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_final(api: &Api<'_>, id: &str) -> Value {
    wait_call(api, id, "finished", |c| {
        !matches!(c["status"].as_str(), Some("pending" | "running"))
    })
    .await
}

/// Whether attempt `n` (1-based) is recorded as running.
fn running_attempt(n: usize) -> impl Fn(&Value) -> bool {
    move |c| {
        let attempts = c["attempts"].as_array();
        attempts.is_some_and(|a| a.len() == n && a[n - 1]["outcome"] == "running")
    }
}

fn outcomes(call: &Value) -> Vec<String> {
    call["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_attempt_cut_short_counts_and_the_call_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = server(&data, &[]);
    let token = admin_token(&data);
    let (retried, single) = {
        let api = api(&srv, &token);
        let fns = deploy(&api, "functions", "fn-app").await;
        // Sleeps on attempt 1 only, returns the attempt it ran on; two retries.
        let retried = spawn(&api, &fns["attempt_number"], json!([60, 2])).await;
        // No retries.
        let single = spawn(&api, &fns["slow"], json!([60])).await;
        for id in [&retried, &single] {
            wait_call(&api, id, "started", running_attempt(1)).await;
        }
        (retried, single)
    };
    srv.kill_hard();
    let srv = server(&data, &[]);
    let api = api(&srv, &token);

    let call = wait_final(&api, &retried).await;
    assert_eq!(call["status"], "success", "{call}");
    assert_eq!(
        call["result"], 2,
        "the re-run sees WASMHOST_ATTEMPT=2: {call}"
    );
    assert_eq!(outcomes(&call), ["interrupted", "success"], "{call}");
    let numbers: Vec<&Value> = call["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["number"])
        .collect();
    assert_eq!(numbers, [&json!(1), &json!(2)]);

    let call = wait_final(&api, &single).await;
    assert_eq!(call["status"], "failure", "{call}");
    assert_eq!(call["error"]["type"], "interrupted", "{call}");
    assert_eq!(outcomes(&call), ["interrupted"], "{call}");
}

#[tokio::test]
async fn a_call_that_keeps_killing_its_host_fails_after_its_retries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = server(&data, &[]);
    let token = admin_token(&data);
    let id = {
        let api = api(&srv, &token);
        let fns = deploy(&api, "functions", "fn-app").await;
        spawn(&api, &fns["attempt_number"], json!([60, 99])).await
    };
    // Two retries: three attempts, each cut short by a kill.
    for attempt in 1..=3 {
        wait_call(&api(&srv, &token), &id, "started", running_attempt(attempt)).await;
        srv.kill_hard();
        srv = server(&data, &[]);
    }
    let api = api(&srv, &token);
    let call = wait_final(&api, &id).await;
    assert_eq!(call["status"], "failure", "{call}");
    assert_eq!(call["error"]["type"], "interrupted", "{call}");
    assert!(
        call["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no retries are left"),
        "{call}"
    );
    assert_eq!(
        outcomes(&call),
        ["interrupted", "interrupted", "interrupted"]
    );
    // It stays failed: another restart does not run it again.
    drop(api);
    let mut srv = srv;
    srv.kill_hard();
    let srv = server(&data, &[]);
    let again = api_get_call(&srv, &token, &id).await;
    assert_eq!(outcomes(&again), outcomes(&call));
}

#[tokio::test]
async fn an_orderly_stop_does_not_count_against_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = server(&data, &[]);
    let token = admin_token(&data);
    let id = {
        let api = api(&srv, &token);
        let fns = deploy(&api, "functions", "fn-app").await;
        // No retries: a crash now would fail it; an orderly stop must not.
        let id = spawn(&api, &fns["slow"], json!([2.0])).await;
        wait_call(&api, &id, "started", running_attempt(1)).await;
        id
    };
    assert!(srv.terminate().is_some(), "the server did not stop");
    assert!(
        srv.log().contains("1 running call(s) will run again"),
        "{}",
        srv.log()
    );
    let srv = server(&data, &[]);
    let call = wait_final(&api(&srv, &token), &id).await;
    assert_eq!(call["status"], "success", "{call}");
    assert_eq!(call["result"], 2.0);
    assert_eq!(outcomes(&call), ["stopped", "success"], "{call}");
}

/// Whether opening the store at `data` needed redb's repair (a file the last process left
/// open): the repair callback runs only then.
fn store_needed_repair(data: &Path) -> bool {
    let repaired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = repaired.clone();
    let db = redb::Builder::new()
        .set_repair_callback(move |_| seen.store(true, std::sync::atomic::Ordering::SeqCst))
        .open(data.join("state.redb"))
        .expect("the store opens");
    drop(db);
    repaired.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn an_orderly_stop_closes_the_store_so_the_next_start_needs_no_repair() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = server(&data, &[]);
    let token = admin_token(&data);
    {
        let api = api(&srv, &token);
        let fns = deploy(&api, "functions", "fn-app").await;
        // A call, so the store has call records and the call-log writer has lines to store
        // right up to the stop.
        let id = spawn(&api, &fns["square"], json!([7])).await;
        wait_final(&api, &id).await;
    }
    assert_eq!(
        srv.terminate().map(|s| s.success()),
        Some(true),
        "{}",
        srv.log()
    );
    assert!(
        !srv.log().contains("did not close"),
        "the store did not close: {}",
        srv.log()
    );
    assert!(
        !store_needed_repair(&data),
        "the server exited with its store still open: the next start repairs it"
    );
    // A kill -9 after a write leaves it open, which is what the check above tells apart.
    let mut srv = server(&data, &[]);
    {
        let api = api(&srv, &token);
        let fns = functions_of(&api, "fn-app").await;
        let id = spawn(&api, &fns["square"], json!([8])).await;
        wait_final(&api, &id).await;
    }
    srv.kill_hard();
    assert!(
        store_needed_repair(&data),
        "a killed server's store needs repair"
    );
}

async fn api_get_call(srv: &Host, token: &str, id: &str) -> Value {
    api(srv, token).get(&format!("/function-calls/{id}")).await
}

/// Every leftover a cut-short deploy could leave: partial uploads, temp files, components
/// no version refers to.
fn assert_no_leftovers(data: &Path, deployed: bool) {
    let names = |sub: &str| -> Vec<String> {
        std::fs::read_dir(data.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names("uploads"), Vec::<String>::new(), "uploads/");
    let components = names("components");
    assert!(
        components.iter().all(|n| n.ends_with(".wasm")),
        "{components:?}"
    );
    assert_eq!(
        components.len(),
        usize::from(deployed),
        "components/ holds exactly the deployed one: {components:?}"
    );
    let cache = names("cache");
    assert!(
        cache.iter().all(|n| !n.starts_with(".tmp")),
        "cache/: {cache:?}"
    );
}

#[tokio::test]
async fn kill_9_during_deploys_leaves_no_half_deploy_and_no_leftovers() {
    let wasm = std::fs::read(example("functions")).unwrap();
    // One whole deploy into a fresh data directory (compiling it) aims the kills.
    let full = {
        let dir = tempfile::tempdir().unwrap();
        let srv = server(dir.path(), &[]);
        let api = api(&srv, &admin_token(dir.path()));
        let started = Instant::now();
        let (status, body) = api.upload(wasm.clone(), "name=crashy").await;
        assert_eq!(status, 201, "{body}");
        started.elapsed()
    };
    let mut seen = HashMap::new();
    for step in 0..=8u32 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut srv = server(&data, &[]);
        let token = admin_token(&data);
        let upload = tokio::spawn({
            let (url, token, wasm) = (
                srv.url("/v1/deployments?name=crashy"),
                token.clone(),
                wasm.clone(),
            );
            async move {
                client()
                    .post(url)
                    .bearer_auth(token)
                    .body(wasm)
                    .send()
                    .await
            }
        });
        tokio::time::sleep(full * step / 4).await;
        srv.kill_hard();
        upload.abort();

        let srv = server(&data, &[]);
        let api = api(&srv, &token);
        let apps = api.get("/apps").await["data"].as_array().unwrap().clone();
        let deployed = !apps.is_empty();
        *seen.entry(deployed).or_insert(0) += 1;
        if deployed {
            // All of it: the app, its version, its functions, served.
            assert_eq!(apps.len(), 1, "{apps:?}");
            assert_eq!(
                (apps[0]["state"].as_str(), apps[0]["version"].as_u64()),
                (Some("deployed"), Some(1)),
                "{apps:?}"
            );
            let fns = functions_of(&api, "crashy").await;
            let (status, r) = api
                .call(
                    reqwest::Method::POST,
                    &format!("/functions/{}/invocations", fns["square"]),
                    Some(json!({"args": [7]})),
                )
                .await;
            assert_eq!((status, &r["result"]), (200, &json!(49)), "{r}");
        }
        assert_no_leftovers(&data, deployed);
        // And the deploy can be made (again) at once.
        let (status, body) = api.upload(wasm.clone(), "name=crashy").await;
        let expected = if deployed { 200 } else { 201 };
        assert_eq!(status, expected, "step {step}: {body}");
        assert_no_leftovers(&data, true);
    }
    eprintln!(
        "deploy kills (deployed before the kill -> rounds): {seen:?}; a whole deploy took {full:?}"
    );
}

#[tokio::test]
async fn kill_9_while_spawning_and_writing_results_loses_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = server(&data, &[]);
    let token = admin_token(&data);
    let fns = deploy(&api(&srv, &token), "functions", "fn-app").await;
    let function = fns["attempt_number"].clone();
    // Eight clients spawn short calls (20 ms each) back to back; the kill lands while
    // spawns are being acknowledged, attempts started and results written.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let url = srv.url(&format!("/v1/functions/{function}/spawn"));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (url, token, acknowledged) = (url.clone(), token.clone(), acknowledged.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..500 {
                let sent = client()
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"args": [0.02, 0]}))
                    .send()
                    .await;
                let Ok(r) = sent else { return };
                if r.status() != 202 {
                    return;
                }
                let Ok(body) = r.json::<Value>().await else {
                    return;
                };
                acknowledged
                    .lock()
                    .unwrap()
                    .push(body["call_id"].as_str().unwrap().to_owned());
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 150 {
        assert!(Instant::now() < deadline, "spawns were not acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.kill_hard();
    for c in clients {
        let _ = c.await;
    }
    let ids = acknowledged.lock().unwrap().clone();

    let srv = server(&data, &[]);
    let api = api(&srv, &token);
    let mut interrupted = 0;
    for id in &ids {
        let call = wait_final(&api, id).await;
        assert_eq!(call["status"], "success", "{call}");
        let outcomes = outcomes(&call);
        let n = outcomes.len();
        // Each attempt cut short is counted, and the guest saw the next number.
        assert_eq!(call["result"], json!(n), "{call}");
        assert_eq!(outcomes[n - 1], "success", "{call}");
        assert!(
            outcomes[..n - 1].iter().all(|o| o == "interrupted"),
            "{call}"
        );
        interrupted += n - 1;
    }
    eprintln!(
        "{} acknowledged spawns all finished; {interrupted} attempt(s) were cut short by the kill",
        ids.len()
    );
}

#[tokio::test]
async fn kill_9_around_scheduled_runs_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = server(&data, &[]);
    let token = admin_token(&data);
    let tick = deploy(&api(&srv, &token), "jobs", "jobs-app").await["tick"].clone();
    let runs = |srv: &Host| {
        let (srv, token, tick) = (srv.url(""), token.clone(), tick.clone());
        async move {
            let r = client()
                .get(format!("{srv}/v1/functions/{tick}/invocations"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["data"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    // Kill three times, each just after a scheduled run was recorded.
    for round in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let before = runs(&srv).await.len();
        while runs(&srv).await.len() == before {
            assert!(Instant::now() < deadline, "round {round}: no scheduled run");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(5 * round)).await;
        srv.kill_hard();
        srv = server(&data, &[]);
    }
    // Runs keep coming after the restarts, and every one recorded finishes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = runs(&srv).await.len();
    while runs(&srv).await.len() < before + 2 {
        assert!(
            Instant::now() < deadline,
            "the schedule stopped after the kills"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = api(&srv, &token);
    let all = runs(&srv).await;
    for run in &all {
        let id = run["call_id"].as_str().unwrap();
        let call = wait_final(&api, id).await;
        assert_eq!(call["source"], "schedule", "{call}");
        // A run cut short by a kill counts as its one attempt (no retries): failed as
        // interrupted, never left pending.
        let interrupted = call["status"] == "failure" && call["error"]["type"] == "interrupted";
        assert!(call["status"] == "success" || interrupted, "{call}");
    }
    // One run per period at most: kills and restarts neither repeat nor pile up runs.
    let mut created: Vec<String> = all
        .iter()
        .map(|r| r["created_at"].as_str().unwrap().to_owned())
        .collect();
    created.sort();
    for pair in created.windows(2) {
        let gap = chrono_gap_ms(&pair[0], &pair[1]);
        assert!(gap >= 900, "two runs {gap} ms apart: {created:?}");
    }
}

/// Milliseconds between two RFC 3339 times.
fn chrono_gap_ms(a: &str, b: &str) -> i64 {
    let t = |s: &str| {
        humantime::parse_rfc3339(s)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    t(b) - t(a)
}

#[tokio::test]
async fn every_spawn_acknowledged_before_a_kill_9_is_there_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = server(&data, &[]);
    let token = admin_token(&data);
    let ids = {
        let api = api(&srv, &token);
        let fns = deploy(&api, "functions", "fn-app").await;
        // Sent at once, so that their records share commits.
        let spawns = (0..48).map(|i| spawn(&api, &fns["square"], json!([i])));
        futures_util::future::join_all(spawns).await
    };
    srv.kill_hard();
    let srv = server(&data, &[]);
    let api = api(&srv, &token);
    for (i, id) in ids.iter().enumerate() {
        // Every call is there, and ends: with its result, or (an attempt the kill cut
        // short, and `square` allows no retry) as interrupted.
        let call = wait_final(&api, id).await;
        match call["status"].as_str() {
            Some("success") => assert_eq!(call["result"], json!(i * i), "{id}: {call}"),
            _ => assert_eq!(call["error"]["type"], "interrupted", "{id}: {call}"),
        }
    }
}
