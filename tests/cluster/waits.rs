//! A host whose database is slow to answer keeps serving its endpoints: what waits on the
//! store waits off the threads that serve them.

use super::hosts::until;
use super::*;
use common::{Host, admin_token, client, example, server, visit, wasmhost_remote};
use serde_json::Value;

/// The host's serving threads: each of them gets requests that wait.
const SERVING_THREADS: usize = 2;

/// What a request that waits on the database asks for, and the answer it must get once
/// the database answers.
#[derive(Clone, Copy, Debug)]
enum Asks {
    /// The API with a token that is not valid: 401.
    WrongToken,
    /// The API's app listing with a valid token: 200.
    Apps,
    /// A proxy-auth endpoint with a valid key and secret: 200.
    ProxyAuth,
    /// The host's `/metrics` with a valid bearer token: 200.
    Metrics,
}

impl Asks {
    async fn send(self, port: u16, token: String) -> u16 {
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
        let (key, secret) = token.split_once(':').unwrap();
        let req = match self {
            Asks::WrongToken => client().get(url("/v1/apps")).bearer_auth("tk-nope:wrong"),
            Asks::Apps => client().get(url("/v1/apps")).bearer_auth(&token),
            Asks::ProxyAuth => client()
                .get(url("/"))
                .header("host", "main--private-vault.localhost")
                .header("wasmhost-key", key)
                .header("wasmhost-secret", secret),
            Asks::Metrics => client().get(url("/metrics")).bearer_auth(&token),
        };
        req.send().await.unwrap().status().as_u16()
    }

    fn answer(self) -> u16 {
        match self {
            Asks::WrongToken => 401,
            Asks::Apps | Asks::ProxyAuth | Asks::Metrics => 200,
        }
    }
}

/// While every token check and every read of the apps waits (PostgreSQL's `tokens` and
/// `apps` tables locked by another session), requests with wrong tokens, valid API
/// requests, proxy-auth checks and `/metrics` pile up on the host, and its endpoints
/// still answer at once. Before, each of those requests held its serving thread until
/// the database answered, and the endpoints on it answered only after the lock. Once
/// the tables are free, every waiting request gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_while_the_database_keeps_the_api_waiting() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let (host, token, db, _dir) = start_host(pg, &["hello", "private"]);
    assert_eq!(visit(&host, HELLO, "/?name=Ann", &[]).await, greeting());

    let lock = pg.lock_tables(&db, &["tokens", "apps"]);
    let mut waiting = Vec::new();
    // A connection each, so every serving thread has some.
    for _ in 0..6 {
        for asks in [Asks::WrongToken, Asks::Apps, Asks::ProxyAuth, Asks::Metrics] {
            let task = tokio::spawn(asks.send(host.port, token.clone()));
            waiting.push((asks, task));
        }
    }
    // As many waiting as there are serving threads: before, that was every thread held.
    until("requests waiting on the locked tables", async || {
        (pg.waiting_for_locks(&db) >= SERVING_THREADS).then_some(())
    })
    .await;
    endpoint_answers(&host).await;
    assert!(
        waiting.iter().all(|(_, task)| !task.is_finished()),
        "a request answered before the database did"
    );

    lock.release();
    for (asks, task) in waiting {
        assert_eq!(task.await.unwrap(), asks.answer(), "{asks:?}");
    }
}

/// A guest that spawns a function finds it without reading the store, and a guest that
/// polls a call waits for the store off its serving thread. Before, a spawn read the
/// `functions` table twice and a poll read the `calls` table, each holding the thread
/// that serves the guest's endpoint (and every other connection on it) until PostgreSQL
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_spawn_and_poll_without_holding_their_serving_threads() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let (host, _token, db, _dir) = start_host(pg, &["hello", "jobs"]);
    assert_eq!(visit(&host, HELLO, "/?name=Ann", &[]).await, greeting());

    // The functions' records are locked: the spawn does not need them.
    let lock = pg.lock_tables(&db, &["functions"]);
    let submitted = tokio::time::timeout(Duration::from_secs(10), submit(&host, 21))
        .await
        .expect("a guest's spawn waited on the functions table");
    let call_id = submitted["call_id"].as_str().expect("a call id").to_owned();
    endpoint_answers(&host).await;
    lock.release();

    // The calls are locked: polls wait for the database, endpoints do not.
    let lock = pg.lock_tables(&db, &["calls"]);
    let polls: Vec<_> = (0..6)
        .map(|_| tokio::spawn(poll(host.port, call_id.clone())))
        .collect();
    until("polls waiting on the locked table", async || {
        (pg.waiting_for_locks(&db) >= SERVING_THREADS).then_some(())
    })
    .await;
    endpoint_answers(&host).await;
    assert!(
        polls.iter().all(|task| !task.is_finished()),
        "a poll answered before the database did"
    );
    lock.release();
    for task in polls {
        let (status, body) = task.await.unwrap();
        assert!(status == 200 || status == 202, "{status} {body}");
    }
    until("the spawned call's result", async || {
        let (status, body) = poll(host.port, call_id.clone()).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(
        poll(host.port, call_id).await,
        (200, r#"{"result":42}"#.into())
    );
}

/// The hello endpoint's host name.
const HELLO: &str = "main--hello-hello.localhost";

fn greeting() -> (u16, String) {
    (200, r#"{"message":"Hello, Ann!"}"#.to_owned())
}

/// A host on a fresh database with `SERVING_THREADS` serving threads, `apps` deployed:
/// the host, an admin token, the database's name and the data directory.
fn start_host(pg: &postgres::Postgres, apps: &[&str]) -> (Host, String, String, tempfile::TempDir) {
    let url = pg.fresh_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let threads = SERVING_THREADS.to_string();
    let cache = common::shared_cache().display().to_string();
    let host = server(
        dir.path(),
        &[
            "--database",
            &url,
            "--cache-dir",
            &cache,
            "--serve-threads",
            &threads,
        ],
    );
    let token = admin_token(dir.path());
    for name in apps {
        let wasm = example(name).display().to_string();
        let (code, out) = wasmhost_remote(&host, &token, &["deploy", &wasm]);
        assert_eq!(code, 0, "{out}");
    }
    (host, token, db, dir)
}

/// The hello endpoint answers, right and at once, 20 times.
async fn endpoint_answers(host: &Host) {
    for _ in 0..20 {
        let visited = visit(host, HELLO, "/?name=Ann", &[]);
        let answer = tokio::time::timeout(Duration::from_secs(10), visited)
            .await
            .expect("the endpoint stalled behind requests waiting on the database");
        assert_eq!(answer, greeting());
    }
}

/// `examples/jobs`' `submit`: spawns `long_job(n)` from inside the guest.
async fn submit(host: &Host, n: i64) -> Value {
    let r = client()
        .post(host.url("/"))
        .header("host", "main--jobs-submit.localhost")
        .json(&json!({ "n": n }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// `examples/jobs`' `result`: the guest polls the call for 100 ms.
async fn poll(port: u16, call_id: String) -> (u16, String) {
    let r = client()
        .get(format!("http://127.0.0.1:{port}/?call_id={call_id}"))
        .header("host", "main--jobs-result.localhost")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
