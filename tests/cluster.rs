//! Cluster mode. The store's behaviour, one suite run against both backends (redb and a
//! real PostgreSQL); then three real `wasmhost server` processes on one PostgreSQL: a
//! deploy through one is served by the others, spawned calls survive `kill -9` of the
//! host running them, a stop through one host stops the others serving.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use wasmhost::manifest::{AppManifest, EndpointKind, EndpointSpec};
use wasmhost::store::{
    AppState, CallRecord, CallStatus, Database, DeployRequest, LogEntry, LogQuery, LogStream,
    ScheduleState, Scope, Store, StoreError, TokenRecord,
};

use common::postgres;

/// Where a suite test's state lives; `open` may be called again to reopen it.
struct Backend {
    dir: tempfile::TempDir,
    database: Database,
}

impl Backend {
    fn redb() -> Backend {
        Backend {
            dir: tempfile::tempdir().unwrap(),
            database: Database::Embedded,
        }
    }

    /// A fresh database on the shared PostgreSQL; `None` where none can run (not in CI).
    fn postgres() -> Option<Backend> {
        let url = postgres::server()?.fresh_database();
        Some(Backend {
            dir: tempfile::tempdir().unwrap(),
            database: Database::Postgres(url),
        })
    }

    fn open(&self) -> Store {
        Store::open_database(&self.database, &self.dir.path().join("state.redb")).unwrap()
    }

    /// Another host of the same state (PostgreSQL only), with its own data directory
    /// holding a copy of the sealing key.
    fn other_host(&self) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            self.dir.path().join("secrets.key"),
            dir.path().join("secrets.key"),
        )
        .unwrap();
        let store = Store::open_database(&self.database, &dir.path().join("state.redb")).unwrap();
        (dir, store)
    }
}

/// Runs each suite function once per backend, as tests `redb::<name>` and `postgres::<name>`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod redb {$(
            #[test]
            fn $name() {
                super::suite::$name(&super::Backend::redb());
            }
        )*}
        mod postgres_backend {$(
            #[test]
            fn $name() {
                if let Some(backend) = super::Backend::postgres() {
                    super::suite::$name(&backend);
                }
            }
        )*}
    };
}

on_both_backends!(
    deploy_versions_and_keeps_function_ids,
    an_apps_functions_are_found_without_the_others,
    labels_are_unique_per_workspace,
    delete_removes_everything,
    tokens_verify_only_with_the_right_secret,
    state_survives_reopening,
    secrets_are_sealed_and_checked,
    volumes_and_calls,
    calls_are_found_by_function_state_and_age,
    a_scheduled_run_is_recorded_once,
    logs_are_found_and_purged,
    a_batch_of_log_lines_keeps_its_order,
    changes_are_counted,
    changes_name_the_apps_they_touch,
    current_versions_are_read_at_once,
    a_finished_call_is_not_written_over,
    calls_written_at_once_all_land,
    calls_over_are_found_among_many,
);

fn endpoint(name: &str, label: Option<&str>) -> EndpointSpec {
    EndpointSpec {
        kind: EndpointKind::Function,
        name: name.into(),
        method: "GET".into(),
        label: label.map(str::to_owned),
        docs: false,
        requires_proxy_auth: false,
        custom_domains: vec![],
        summary: None,
        args_schema: json!({"type": "object"}),
        result_schema: None,
        timeout: Some(Duration::from_secs(1)),
        memory_mib: None,
        gpu: None,
        allowed_outbound_hosts: vec![],
        scaling: Default::default(),
        batching: None,
    }
}

fn manifest(endpoints: Vec<EndpointSpec>) -> AppManifest {
    AppManifest {
        app: "demo".into(),
        sdk_version: "0.1.0".into(),
        endpoints,
        functions: vec![],
        pre_init: false,
    }
}

fn req<'a>(name: &'a str, digest: &'a str, m: &'a AppManifest) -> DeployRequest<'a> {
    DeployRequest {
        workspace: "main",
        environment: "main",
        name,
        digest,
        manifest: m,
        ephemeral: false,
        deployed_by: None,
        rollback_of: None,
    }
}

fn call(id: &str, status: CallStatus, created_at: &str) -> CallRecord {
    CallRecord {
        call_id: id.into(),
        function_id: "fu-1".into(),
        app_id: "ap-1".into(),
        function_name: "f".into(),
        input: json!({"args": [1]}),
        status,
        result: None,
        error: None,
        attempts: vec![],
        source: "spawn".into(),
        created_at: created_at.into(),
        started_at: None,
        finished_at: status
            .is_final()
            .then(|| "2026-01-01T00:00:09.000Z".to_owned()),
    }
}

/// A redb store written before the call indexes existed gets them built when it opens:
/// its calls are listed, resumed and swept as a new store's are.
#[test]
fn an_embedded_store_from_before_the_call_indexes_gets_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let db = ::redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut calls: ::redb::Table<&str, &str> = txn
                .open_table(::redb::TableDefinition::new("calls"))
                .unwrap();
            let open = call("fc-open", CallStatus::Running, "2026-01-01T00:00:01.000Z");
            let done = call("fc-done", CallStatus::Success, "2026-01-01T00:00:02.000Z");
            for c in [&open, &done] {
                let json = serde_json::to_string(c).unwrap();
                calls.insert(c.call_id.as_str(), json.as_str()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let s = Store::open(&path).unwrap();
    let listed: Vec<String> = s
        .list_calls("fu-1", 10)
        .unwrap()
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(listed, ["fc-done", "fc-open"]);
    let open: Vec<String> = s
        .claim_orphaned_calls()
        .unwrap()
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(open, ["fc-open"]);
    assert_eq!(s.purge_calls("2026-01-01T00:00:10.000Z").unwrap(), 1);
}

/// The behaviour both backends share.
#[path = "cluster/suite.rs"]
mod suite;

#[path = "cluster/waits.rs"]
mod waits;

/// What only a shared database does: two hosts on one PostgreSQL.
mod shared {
    use super::*;

    fn two_hosts() -> Option<(Backend, Store, tempfile::TempDir, Store)> {
        let b = Backend::postgres()?;
        let first = b.open();
        let (dir, second) = b.other_host();
        Some((b, first, dir, second))
    }

    fn poll(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what} did not happen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A restart restores every app from one task, with a store call or more each: with
    /// hundreds of apps on PostgreSQL that task once spun a core forever (see the store's
    /// `run_on`). Here a task on a runtime makes 1,000 calls without yielding.
    #[test]
    fn a_task_making_many_store_calls_in_a_row_finishes() {
        let Some(b) = Backend::postgres() else {
            return;
        };
        let store = std::sync::Arc::new(b.open());
        let m = manifest(vec![endpoint("a", None)]);
        let app = store.deploy(&req("demo", "d1", &m)).unwrap().app;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let s = store.clone();
        runtime.spawn(async move {
            for _ in 0..1000 {
                assert!(s.get_app(&app.app_id).unwrap().is_some());
            }
            let _ = done.send(());
        });
        let outcome = finished.recv_timeout(Duration::from_secs(60));
        // Without waiting for its worker, which spins where the bug is back.
        runtime.shutdown_background();
        assert!(
            outcome.is_ok(),
            "1,000 store calls in one task did not finish in 60 s"
        );
    }

    #[test]
    fn a_change_and_a_component_reach_the_other_host() {
        let Some((_b, one, dir, two)) = two_hosts() else {
            return;
        };
        let before = two.change_seq().unwrap();
        let m = manifest(vec![endpoint("a", None)]);
        let component = dir.path().join("made-here.wasm");
        std::fs::write(&component, b"\0asm component bytes").unwrap();
        one.put_component("d1", &component).unwrap();
        one.deploy(&req("demo", "d1", &m)).unwrap();
        assert_ne!(two.change_seq().unwrap(), before);
        let fetched = dir.path().join("fetched.wasm");
        two.fetch_component("d1", &fetched).unwrap();
        assert_eq!(std::fs::read(&fetched).unwrap(), b"\0asm component bytes");
        assert!(matches!(
            two.fetch_component("d-none", &dir.path().join("none.wasm")),
            Err(StoreError::NotFound(_))
        ));
        // A token made on one host works on the other at once.
        let t = one.create_token("ci", Scope::Invoke).unwrap();
        assert!(
            pollster::block_on(two.verify_bearer(&t.bearer()))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_dead_hosts_calls_are_claimed_once_its_lease_runs_out() {
        let Some((b, one, _dir, two)) = two_hosts() else {
            return;
        };
        one.put_call(&call(
            "fc-1",
            CallStatus::Running,
            "2026-01-01T00:00:01.000Z",
        ))
        .unwrap();
        one.put_call(&call(
            "fc-2",
            CallStatus::Pending,
            "2026-01-01T00:00:02.000Z",
        ))
        .unwrap();
        assert!(
            two.claim_orphaned_calls().unwrap().is_empty(),
            "still leased"
        );
        drop(one);
        // No renewal comes from a dead host; its leases run out (5 s).
        let mut claimed = Vec::new();
        poll("the claim", || {
            claimed.extend(
                two.claim_orphaned_calls()
                    .unwrap()
                    .into_iter()
                    .map(|c| c.call_id),
            );
            claimed.len() == 2
        });
        assert_eq!(claimed, ["fc-1", "fc-2"]);
        // Claimed calls are the claimer's now: renewed, they are nobody else's orphans.
        two.renew_leases().unwrap();
        let (_dir3, three) = b.other_host();
        assert!(three.claim_orphaned_calls().unwrap().is_empty());
        // A finished call is never overwritten by a host that ran it twice.
        let mut done = call("fc-1", CallStatus::Success, "2026-01-01T00:00:01.000Z");
        done.result = Some(json!(1));
        two.put_call(&done).unwrap();
        three
            .put_call(&call(
                "fc-1",
                CallStatus::Running,
                "2026-01-01T00:00:01.000Z",
            ))
            .unwrap();
        assert_eq!(two.get_call("fc-1").unwrap().unwrap(), done);
    }

    #[test]
    fn one_host_leads_the_schedules_until_its_session_ends() {
        let Some((_b, one, _dir, two)) = two_hosts() else {
            return;
        };
        assert!(one.schedule_leader().unwrap());
        assert!(!two.schedule_leader().unwrap());
        assert!(
            one.schedule_leader().unwrap(),
            "the leader stays the leader"
        );
        drop(one);
        poll("the takeover", || two.schedule_leader().unwrap());
    }
}

/// Three real servers on one PostgreSQL.
mod hosts {
    use super::*;
    use common::{Api, Host, admin_token, client, example, server, visit, wasmhost_remote};

    fn start(data: &Path, url: &str) -> Host {
        server(
            data,
            &[
                "--database",
                url,
                "--cache-dir",
                &common::shared_cache().display().to_string(),
            ],
        )
    }

    fn api<'a>(host: &'a Host, token: &str) -> Api<'a> {
        Api {
            host,
            token: token.to_owned(),
        }
    }

    pub(super) async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            assert!(Instant::now() < deadline, "{what} did not happen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    const WEB: &str = "main--fn-app-slow-web.localhost";
    /// `WEB` under the label the test gives it.
    const LABELLED: &str = "main--slowpoke.localhost";

    /// Spawns `attempt_number(seconds, quick_from)` through `api`; returns the call id.
    async fn spawn(api: &Api<'_>, function_id: &str, seconds: f64, quick_from: u32) -> String {
        let (status, s) = api
            .call(
                reqwest::Method::POST,
                &format!("/functions/{function_id}/spawn"),
                Some(json!({ "args": [seconds, quick_from] })),
            )
            .await;
        assert_eq!(status, 202, "{s}");
        s["call_id"].as_str().unwrap().to_owned()
    }

    /// Deploys examples/functions through `one`; waits until `others` serve it. Returns
    /// its functions' ids by name.
    async fn deploy_everywhere(
        one: &Host,
        others: [&Host; 2],
        token: &str,
    ) -> std::collections::HashMap<String, String> {
        let wasm = example("functions").display().to_string();
        let (code, out) = wasmhost_remote(one, token, &["deploy", &wasm, "--name", "fn-app"]);
        assert_eq!(code, 0, "{out}");
        let deployed = Instant::now();
        for host in others {
            until("the deploy reaching another host", async || {
                let (status, body) = visit(host, WEB, "/?seconds=0", &[]).await;
                (status == 200).then_some(body)
            })
            .await;
        }
        eprintln!("deploy served by every host after {:?}", deployed.elapsed());
        api(others[0], token).function_ids("fn-app").await
    }

    /// A cancel through `one` stops the attempt `runner` runs (its log says so).
    async fn cancel_through_another_host(one: &Api<'_>, runner: &Api<'_>, function_id: &str) {
        let long = spawn(runner, function_id, 60.0, 99).await;
        until("the long call running", async || {
            let c = one.get(&format!("/function-calls/{long}")).await;
            (c["status"] == "running").then_some(())
        })
        .await;
        let path = format!("/function-calls/{long}");
        let (status, c) = one.call(reqwest::Method::DELETE, &path, None).await;
        assert_eq!((status, &c["status"]), (200, &json!("terminated")), "{c}");
        until(
            "the other host stopping the cancelled attempt",
            async || {
                let logs = one.get(&format!("/function-calls/{long}/logs")).await;
                let lines = logs["data"].as_array().unwrap();
                lines.iter().any(|l| l["text"] == "cancelled").then_some(())
            },
        )
        .await;
    }

    /// Spawns calls through `victim`, which runs them, kills it with SIGKILL while they
    /// run, and checks through `watcher` that every one finishes elsewhere.
    async fn kill_a_host_mid_calls(
        victim: &mut Host,
        watcher: &Api<'_>,
        token: &str,
        function_id: &str,
    ) {
        let mut calls = Vec::new();
        for _ in 0..24 {
            calls.push(spawn(&api(victim, token), function_id, 30.0, 2).await);
        }
        until("the spawned calls running", async || {
            for id in &calls {
                let c = watcher.get(&format!("/function-calls/{id}")).await;
                if c["status"] != "running" {
                    return None;
                }
            }
            Some(())
        })
        .await;
        victim.kill_hard();
        let killed = Instant::now();
        for id in &calls {
            let c = until("a call of the dead host finishing", async || {
                let c = watcher.get(&format!("/function-calls/{id}")).await;
                (!matches!(c["status"].as_str(), Some("pending" | "running"))).then_some(c)
            })
            .await;
            assert_eq!(c["status"], "success", "{c}");
            let outcomes: Vec<&str> = c["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["outcome"].as_str().unwrap())
                .collect();
            assert_eq!(outcomes, ["interrupted", "success"], "{c}");
            assert_eq!(c["result"], 2, "run again as attempt 2: {c}");
        }
        eprintln!(
            "{} calls of the killed host finished elsewhere {:?} after the kill",
            calls.len(),
            killed.elapsed()
        );
    }

    /// Three hosts serve `jobs-app`; its `tick` (every second) ran once per period.
    async fn schedule_fired_once_per_tick(api: &Api<'_>) {
        let tick = api.function_ids("jobs-app").await["tick"].clone();
        let runs = until("three scheduled runs", async || {
            let runs = api
                .get(&format!("/functions/{tick}/invocations?limit=1000"))
                .await;
            let runs = runs["data"].as_array().unwrap().clone();
            (runs.len() >= 3).then_some(runs)
        })
        .await;
        let mut times: Vec<std::time::SystemTime> = runs
            .iter()
            .map(|c| humantime::parse_rfc3339(c["created_at"].as_str().unwrap()).unwrap())
            .collect();
        times.sort();
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]).unwrap();
            assert!(
                gap >= Duration::from_millis(900),
                "two runs of one tick {gap:?} apart: {runs:?}"
            );
        }
    }

    /// While its database cannot be reached, a host answers a valid token 503, not 401:
    /// the token may well be valid, only its check failed. That holds for the API and
    /// for a proxy-auth endpoint. Once the database is back, the host serves again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_out_of_reach_is_503_not_401() {
        let Some(pg) = postgres::server() else {
            return;
        };
        let url = pg.fresh_database();
        let db = url.rsplit('/').next().unwrap().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let host = start(dir.path(), &url);
        let token = admin_token(dir.path());
        let wasm = example("private").display().to_string();
        let (code, out) = wasmhost_remote(&host, &token, &["deploy", &wasm]);
        assert_eq!(code, 0, "{out}");
        let (key, secret) = token.split_once(':').unwrap();
        let proxy = [("wasmhost-key", key), ("wasmhost-secret", secret)];
        let vault = "main--private-vault.localhost";
        // A dashboard session, and the two other places a token is checked.
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = browser
            .post(host.url("/dashboard/login"))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        let session = login.headers()["set-cookie"].to_str().unwrap();
        let cookie = session.split(';').next().unwrap().to_owned();
        let others = async || {
            let get = |path: &str| browser.get(host.url(path));
            let dashboard = get("/dashboard").header("cookie", &cookie).send();
            let metrics = get("/metrics").bearer_auth(&token).send();
            let (d, m) = (dashboard.await.unwrap(), metrics.await.unwrap());
            (d.status().as_u16(), m.status().as_u16())
        };
        let answers = async || {
            let (api, api_body) = api(&host, &token)
                .call(reqwest::Method::GET, "/apps", None)
                .await;
            let (web, web_body) = visit(&host, vault, "/", &proxy).await;
            (api, api_body, web, web_body)
        };
        let (a, _, w, _) = answers().await;
        assert_eq!((a, w, others().await), (200, 200, (200, 200)));

        let sql = |q: String| pg.psql("postgres", &q).unwrap();
        sql(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"));
        sql(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
        ));
        let (api_body, web_body) = until("both answering 503", async || {
            let (a, api_body, w, web_body) = answers().await;
            assert!(
                a != 401 && w != 401,
                "a valid token refused while the database is out of reach: {a} {api_body}; {w} {web_body}"
            );
            (a == 503 && w == 503).then_some((api_body, web_body))
        })
        .await;
        assert!(
            api_body.to_string().contains("PostgreSQL")
                && web_body.contains("token could not be checked"),
            "{api_body}; {web_body}"
        );
        // Neither the session nor the metrics token is taken for a wrong one.
        assert_eq!(others().await, (503, 503));

        sql(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"));
        until("the host serving again", async || {
            let (a, _, w, web_body) = answers().await;
            (a == 200 && w == 200).then_some(web_body)
        })
        .await;
        assert_eq!(
            visit(&host, vault, "/", &proxy).await.1,
            r#"{"secret":"42"}"#
        );
        assert_eq!(others().await, (200, 200));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn any_host_serves_and_no_call_is_lost_when_one_dies() {
        let Some(pg) = postgres::server() else {
            return;
        };
        let url = pg.fresh_database();
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<_> = (1..=3)
            .map(|i| dir.path().join(format!("host{i}")))
            .collect();
        let one = start(&data[0], &url);
        let token = admin_token(&data[0]);
        // Every host seals secrets with the same key.
        for d in &data[1..] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::copy(data[0].join("secrets.key"), d.join("secrets.key")).unwrap();
        }
        let two = start(&data[1], &url);
        let mut three = start(&data[2], &url);
        assert!(
            !data[1].join("admin-token").exists(),
            "one admin token per cluster"
        );

        let fns = deploy_everywhere(&one, [&two, &three], &token).await;
        // examples/jobs has `tick`, scheduled every second: every host serves it, one fires it.
        let jobs = example("jobs").display().to_string();
        let (code, out) = wasmhost_remote(&two, &token, &["deploy", &jobs, "--name", "jobs-app"]);
        assert_eq!(code, 0, "{out}");
        let (status, square) = api(&three, &token).invoke(&fns["square"], json!([7])).await;
        assert_eq!((status, &square["result"]), (200, &json!(49)), "{square}");
        let first = api(&one, &token);
        cancel_through_another_host(&first, &api(&two, &token), &fns["attempt_number"]).await;
        kill_a_host_mid_calls(&mut three, &first, &token, &fns["attempt_number"]).await;

        // A token made through one host works on another at once.
        let (status, t) = first
            .call(
                reqwest::Method::POST,
                "/tokens",
                Some(json!({"name": "ci", "scope": "invoke"})),
            )
            .await;
        assert_eq!(status, 201, "{t}");
        let bearer = format!(
            "{}:{}",
            t["token_id"].as_str().unwrap(),
            t["token_secret"].as_str().unwrap()
        );
        let r = client()
            .get(two.url("/v1/apps"))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        schedule_fired_once_per_tick(&first).await;

        // A label set through host 1 is served by host 2, which follows that app alone.
        let web_fn = fns
            .iter()
            .find(|(name, _)| name.replace('_', "-") == "slow-web")
            .map(|(_, id)| id.clone())
            .expect("examples/functions has slow-web");
        let (status, body) = first
            .call(
                reqwest::Method::PUT,
                &format!("/web-endpoints/{web_fn}/labels"),
                Some(json!({ "label": "slowpoke" })),
            )
            .await;
        assert_eq!(status, 204, "{body}");
        until("the label reaching host 2", async || {
            let (status, _) = visit(&two, LABELLED, "/?seconds=0", &[]).await;
            (status == 200).then_some(())
        })
        .await;

        // Stop through host 1: host 2 stops serving it.
        let app_id = first.app_id("fn-app").await;
        let (status, body) = first
            .call(reqwest::Method::DELETE, &format!("/apps/{app_id}"), None)
            .await;
        assert_eq!(status, 204, "{body}");
        until("the stop reaching host 2", async || {
            let (status, _) = visit(&two, WEB, "/?seconds=0", &[]).await;
            (status == 404).then_some(())
        })
        .await;
        let (status, _) = visit(&two, LABELLED, "/?seconds=0", &[]).await;
        assert_eq!(status, 404, "the stopped app's label is not served");
    }
}
