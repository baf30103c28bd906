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
    labels_are_unique_per_workspace,
    delete_removes_everything,
    tokens_verify_only_with_the_right_secret,
    state_survives_reopening,
    secrets_are_sealed_and_checked,
    volumes_and_calls,
    a_scheduled_run_is_recorded_once,
    logs_are_found_and_purged,
    changes_are_counted,
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

mod suite {
    use super::*;

    pub fn deploy_versions_and_keeps_function_ids(b: &Backend) {
        let s = b.open();
        let m1 = manifest(vec![endpoint("a", None), endpoint("b", None)]);
        let first = s.deploy(&req("demo", "d1", &m1)).unwrap();
        assert!(first.changed);
        assert_eq!(first.app.version, 1);
        let again = s.deploy(&req("demo", "d1", &m1)).unwrap();
        assert!(!again.changed, "same digest is a no-op");
        assert_eq!(again.app.version, 1);
        let m2 = manifest(vec![endpoint("a", None)]);
        let second = s.deploy(&req("demo", "d2", &m2)).unwrap();
        assert_eq!(second.app.version, 2);
        assert_eq!(
            second.functions[0].function_id,
            first.functions[0].function_id
        );
        let listed = s.list_functions(&first.app.app_id).unwrap();
        assert_eq!(listed.len(), 1, "b is gone from the current version");
        let current = s.current_version(&second.app).unwrap().unwrap();
        assert_eq!(current.digest, "d2");
        let history = s.list_versions(&first.app.app_id).unwrap();
        let numbers: Vec<u32> = history.iter().map(|v| v.version).collect();
        assert_eq!(numbers, [2, 1]);
        assert_eq!(
            s.get_version(&first.app.app_id, 1).unwrap().unwrap().digest,
            "d1"
        );
        assert!(s.get_version(&first.app.app_id, 3).unwrap().is_none());
        let digests = s.component_digests().unwrap();
        assert!(digests.contains("d1") && digests.contains("d2"));
        let stopped = s
            .set_app_state(&first.app.app_id, AppState::Stopped)
            .unwrap();
        assert_eq!(stopped.state, AppState::Stopped);
        assert_eq!(
            s.find_app("main", "main", "demo").unwrap().unwrap().state,
            AppState::Stopped
        );
        let created = s.create_app("main", "main", "empty", false).unwrap();
        assert_eq!(created.version, 0);
        assert!(matches!(
            s.create_app("main", "main", "empty", false),
            Err(StoreError::Conflict(_))
        ));
    }

    pub fn labels_are_unique_per_workspace(b: &Backend) {
        let s = b.open();
        let m = manifest(vec![endpoint("a", None)]);
        let one = s.deploy(&req("one", "d1", &m)).unwrap();
        let two = s.deploy(&req("two", "d2", &m)).unwrap();
        s.set_label(&one.functions[0].function_id, "greeter")
            .unwrap();
        let clash = s.set_label(&two.functions[0].function_id, "greeter");
        assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
        assert!(matches!(
            s.set_label(&two.functions[0].function_id, "Not_DNS"),
            Err(StoreError::Invalid(_))
        ));
        // Moving a label frees the old one.
        s.set_label(&one.functions[0].function_id, "hello").unwrap();
        s.set_label(&two.functions[0].function_id, "greeter")
            .unwrap();
        // A manifest label that clashes refuses the whole deploy and stores nothing.
        let m3 = manifest(vec![endpoint("a", Some("greeter"))]);
        assert!(matches!(
            s.deploy(&req("three", "d3", &m3)),
            Err(StoreError::Conflict(_))
        ));
        assert!(s.find_app("main", "main", "three").unwrap().is_none());
    }

    pub fn delete_removes_everything(b: &Backend) {
        let s = b.open();
        let m = manifest(vec![endpoint("a", Some("lbl"))]);
        let dep = s.deploy(&req("demo", "d1", &m)).unwrap();
        s.delete_app(&dep.app.app_id).unwrap();
        assert!(s.list_apps().unwrap().is_empty());
        assert!(s.all_functions().unwrap().is_empty());
        assert!(matches!(
            s.delete_app(&dep.app.app_id),
            Err(StoreError::NotFound(_))
        ));
        // The label is free again.
        s.deploy(&req("other", "d2", &m)).unwrap();
    }

    pub fn tokens_verify_only_with_the_right_secret(b: &Backend) {
        let s = b.open();
        assert!(!s.has_tokens().unwrap());
        let t = s.create_token("ci", Scope::Invoke).unwrap();
        assert!(s.has_tokens().unwrap());
        assert!(s.verify_bearer(&t.bearer()).unwrap().is_some());
        assert!(s.verify_token(&t.token_id, "wrong").unwrap().is_none());
        assert!(
            s.verify_token("tk-nope", &t.token_secret)
                .unwrap()
                .is_none()
        );
        assert!(s.verify_bearer("garbage").unwrap().is_none());
        let listed = s.list_tokens().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(
            !serde_json::to_string(&listed)
                .unwrap()
                .contains(&t.token_secret)
        );
        assert_eq!(listed[0].scope, Scope::Invoke);
        // Revoked, it stops working at once.
        assert!(s.revoke_token(&t.token_id).unwrap());
        assert!(s.verify_bearer(&t.bearer()).unwrap().is_none());
        assert!(!s.revoke_token(&t.token_id).unwrap());
        // The last admin token stays: without it no token could be made again.
        let first = s.create_token("admin", Scope::Admin).unwrap();
        assert!(matches!(
            s.revoke_token(&first.token_id),
            Err(StoreError::Conflict(_))
        ));
        let second = s.create_token("admin 2", Scope::Admin).unwrap();
        assert!(s.revoke_token(&first.token_id).unwrap());
        assert!(s.verify_bearer(&second.bearer()).unwrap().is_some());
        // Tokens made before scopes existed are admin tokens.
        let old =
            r#"{"token_id":"tk-1","name":"n","secret_hash":"00","salt":"00","created_at":"t"}"#;
        let record: TokenRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.scope, Scope::Admin);
    }

    pub fn state_survives_reopening(b: &Backend) {
        let m = manifest(vec![endpoint("a", None)]);
        let id = {
            let s = b.open();
            s.deploy(&req("demo", "d1", &m)).unwrap().app.app_id
        };
        let s = b.open();
        let app = s.get_app(&id).unwrap().unwrap();
        assert_eq!(app.state, AppState::Deployed);
        assert_eq!(s.current_version(&app).unwrap().unwrap().manifest, m);
    }

    pub fn secrets_are_sealed_and_checked(b: &Backend) {
        let value = "s3cr3t-value-0a1b2c";
        {
            let s = b.open();
            let values = BTreeMap::from([("PASSWORD".to_owned(), value.to_owned())]);
            s.put_secret("db", values).unwrap();
            let bad = BTreeMap::from([("1BAD".to_owned(), "x".to_owned())]);
            assert!(matches!(
                s.put_secret("db", bad),
                Err(StoreError::Invalid(_))
            ));
        }
        let s = b.open();
        assert_eq!(
            s.get_secret("db").unwrap().unwrap().values["PASSWORD"],
            value
        );
        assert_eq!(s.list_secrets().unwrap().len(), 1);
        s.delete_secret("db").unwrap();
        assert!(matches!(
            s.delete_secret("db"),
            Err(StoreError::NotFound(_))
        ));
        drop(s);
        // Another key is refused at open, before any function needs a secret.
        std::fs::write(
            b.dir.path().join("secrets.key"),
            format!("{}\n", "07".repeat(32)),
        )
        .unwrap();
        if matches!(b.database, Database::Postgres(_)) {
            let refused = Store::open_database(&b.database, &b.dir.path().join("state.redb"));
            assert!(
                matches!(refused, Err(StoreError::Key(_))),
                "a host with another key must be refused"
            );
        }
    }

    pub fn volumes_and_calls(b: &Backend) {
        let s = b.open();
        s.create_volume("data").unwrap();
        assert!(matches!(
            s.create_volume("data"),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.get_volume("data").unwrap().unwrap().name, "data");
        assert_eq!(s.list_volumes().unwrap().len(), 1);

        s.put_call(&call(
            "fc-1",
            CallStatus::Pending,
            "2026-01-01T00:00:01.000Z",
        ))
        .unwrap();
        s.put_call(&call(
            "fc-2",
            CallStatus::Success,
            "2026-01-01T00:00:02.000Z",
        ))
        .unwrap();
        s.put_call(&call(
            "fc-3",
            CallStatus::Running,
            "2026-01-01T00:00:03.000Z",
        ))
        .unwrap();
        let newest: Vec<String> = s
            .list_calls("fu-1", 2)
            .unwrap()
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        assert_eq!(newest, ["fc-3", "fc-2"]);
        let wrote = s
            .update_call("fc-1", |c| {
                c.status = CallStatus::Running;
                true
            })
            .unwrap();
        assert!(wrote);
        assert!(!s.update_call("fc-1", |_| false).unwrap());
        assert!(!s.update_call("fc-none", |_| true).unwrap());
        assert_eq!(
            s.get_call("fc-1").unwrap().unwrap().status,
            CallStatus::Running
        );
        assert_eq!(s.purge_calls("2026-01-01T00:00:10.000Z").unwrap(), 1);
        assert!(s.get_call("fc-2").unwrap().is_none());
        // This host runs its calls: none is an orphan while it lives.
        s.renew_leases().unwrap();
        drop(s);
        // A new process finds the calls not over (embedded: the old process is gone; in
        // cluster mode they are another host's until its lease runs out).
        let s = b.open();
        let orphans: Vec<String> = s
            .claim_orphaned_calls()
            .unwrap()
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        match b.database {
            Database::Embedded => assert_eq!(orphans, ["fc-1", "fc-3"]),
            Database::Postgres(_) => assert!(orphans.is_empty(), "{orphans:?}"),
        }
        assert!(s.claim_orphaned_calls().unwrap().is_empty());
    }

    pub fn a_scheduled_run_is_recorded_once(b: &Backend) {
        let s = b.open();
        assert!(s.schedule_leader().unwrap());
        let first = ScheduleState {
            function_id: "fu-1".into(),
            schedule: "every 1m".into(),
            version: 1,
            next_run_ms: 1_000,
            last_run_ms: None,
        };
        s.put_schedule(&first).unwrap();
        let due = ScheduleState {
            next_run_ms: 61_000,
            last_run_ms: Some(1_000),
            ..first.clone()
        };
        let run = call("fc-s1", CallStatus::Pending, "2026-01-01T00:00:01.000Z");
        assert!(s.record_scheduled_run(&run, &due).unwrap());
        // The same tick seen again (by this host or another) records nothing.
        let again = call("fc-s2", CallStatus::Pending, "2026-01-01T00:00:01.000Z");
        assert!(!s.record_scheduled_run(&again, &due).unwrap());
        assert!(s.get_call("fc-s2").unwrap().is_none());
        assert_eq!(s.get_schedule("fu-1").unwrap().unwrap(), due);
    }

    pub fn logs_are_found_and_purged(b: &Backend) {
        let s = b.open();
        let entry = |time: &str, app: &str, function: &str, call: Option<&str>| LogEntry {
            seq: 0,
            time: time.into(),
            app_id: app.into(),
            function: function.into(),
            call_id: call.map(str::to_owned),
            stream: LogStream::Stdout,
            text: format!("{app} {function} {time}"),
        };
        // Seqs as one host's writer numbers them.
        let mut lines = vec![
            entry("2026-01-01T00:00:01.000Z", "a", "f", Some("c1")),
            entry("2026-01-01T00:00:02.000Z", "b", "f", Some("c2")),
            entry("2026-01-01T00:00:03.000Z", "a", "g", None),
            entry("2026-01-01T00:00:04.000Z", "a", "f", Some("c1")),
        ];
        let base = s.last_log_seq().unwrap();
        for (i, l) in lines.iter_mut().enumerate() {
            l.seq = base + 1 + i as u64;
        }
        s.append_logs(&lines).unwrap();
        assert!(s.last_log_seq().unwrap() >= base + 4);
        let times = |v: Vec<LogEntry>| {
            v.into_iter()
                .map(|e| e.time[17..19].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(times(s.call_logs("c1").unwrap()), ["01", "04"]);
        let all = LogQuery {
            limit: 100,
            ..Default::default()
        };
        let a = s.app_logs("a", &all).unwrap();
        assert_eq!(times(a.clone()), ["01", "03", "04"]);
        assert!(a.windows(2).all(|w| w[0].seq < w[1].seq));
        let newest = LogQuery {
            limit: 2,
            ..all.clone()
        };
        assert_eq!(times(s.app_logs("a", &newest).unwrap()), ["03", "04"]);
        let f = LogQuery {
            function: Some("f"),
            ..all.clone()
        };
        assert_eq!(times(s.app_logs("a", &f).unwrap()), ["01", "04"]);
        let since = LogQuery {
            since: Some("2026-01-01T00:00:03.000Z"),
            ..all.clone()
        };
        assert_eq!(times(s.app_logs("a", &since).unwrap()), ["03", "04"]);
        let after = LogQuery {
            after_seq: Some(a[1].seq),
            ..all.clone()
        };
        assert_eq!(times(s.app_logs("a", &after).unwrap()), ["04"]);
        assert_eq!(s.purge_logs("2026-01-01T00:00:03.000Z").unwrap(), 2);
        assert_eq!(times(s.call_logs("c1").unwrap()), ["04"]);
        assert!(s.app_logs("b", &all).unwrap().is_empty());
    }

    pub fn changes_are_counted(b: &Backend) {
        let s = b.open();
        let before = s.change_seq().unwrap();
        let m = manifest(vec![endpoint("a", None)]);
        let dep = s.deploy(&req("demo", "d1", &m)).unwrap();
        let deployed = s.change_seq().unwrap();
        assert_ne!(deployed, before);
        s.set_app_state(&dep.app.app_id, AppState::Stopped).unwrap();
        assert_ne!(s.change_seq().unwrap(), deployed);
        // Calls and tokens are not what hosts route by.
        let quiet = s.change_seq().unwrap();
        s.create_token("t", Scope::Invoke).unwrap();
        assert_eq!(s.change_seq().unwrap(), quiet);
    }
}

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
        assert!(two.verify_bearer(&t.bearer()).unwrap().is_some());
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

    async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            assert!(Instant::now() < deadline, "{what} did not happen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

        // Deploy through host 1; hosts 2 and 3 serve it (loaded from the database).
        let wasm = example("functions").display().to_string();
        let (code, out) = wasmhost_remote(&one, &token, &["deploy", &wasm, "--name", "fn-app"]);
        assert_eq!(code, 0, "{out}");
        let web = "main--fn-app-slow-web.localhost";
        let deployed = Instant::now();
        for host in [&two, &three] {
            until("the deploy reaching another host", async || {
                let (status, body) = visit(host, web, "/?seconds=0", &[]).await;
                (status == 200).then_some(body)
            })
            .await;
        }
        eprintln!("deploy served by every host after {:?}", deployed.elapsed());
        let fns: std::collections::HashMap<String, String> = {
            let api = api(&two, &token);
            let app_id = api.app_id("fn-app").await;
            api.get(&format!("/apps/{app_id}/functions")).await["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["name"].as_str().unwrap().to_owned(),
                        f["function_id"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let (status, square) = api(&three, &token).invoke(&fns["square"], json!([7])).await;
        assert_eq!((status, &square["result"]), (200, &json!(49)), "{square}");

        // A cancel through host 1 stops the attempt host 2 runs (its log says so).
        let long = {
            let (status, s) = api(&two, &token)
                .call(
                    reqwest::Method::POST,
                    &format!("/functions/{}/spawn", fns["attempt_number"]),
                    Some(json!({ "args": [60.0, 99] })),
                )
                .await;
            assert_eq!(status, 202, "{s}");
            s["call_id"].as_str().unwrap().to_owned()
        };
        let first = api(&one, &token);
        until("the long call running", async || {
            let c = first.get(&format!("/function-calls/{long}")).await;
            (c["status"] == "running").then_some(())
        })
        .await;
        let (status, c) = first
            .call(
                reqwest::Method::DELETE,
                &format!("/function-calls/{long}"),
                None,
            )
            .await;
        assert_eq!((status, &c["status"]), (200, &json!("terminated")), "{c}");
        until("host 2 stopping the cancelled attempt", async || {
            let logs = first.get(&format!("/function-calls/{long}/logs")).await;
            logs["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["text"] == "cancelled")
                .then_some(())
        })
        .await;

        // Spawn through host 3, which runs them; kill -9 it while they run.
        let calls: Vec<String> = {
            let api = api(&three, &token);
            let mut ids = Vec::new();
            for _ in 0..24 {
                let (status, s) = api
                    .call(
                        reqwest::Method::POST,
                        &format!("/functions/{}/spawn", fns["attempt_number"]),
                        Some(json!({ "args": [30.0, 2] })),
                    )
                    .await;
                assert_eq!(status, 202, "{s}");
                ids.push(s["call_id"].as_str().unwrap().to_owned());
            }
            ids
        };
        let watcher = api(&one, &token);
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
        three.kill_hard();
        let killed = Instant::now();
        let mut interrupted = 0;
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
            if outcomes.first() == Some(&"interrupted") {
                interrupted += 1;
                assert_eq!(c["result"], 2, "run again as attempt 2: {c}");
            }
        }
        assert!(interrupted > 0, "no call was cut short by the kill");
        eprintln!(
            "{} calls of the killed host finished elsewhere {:?} after the kill ({interrupted} cut short)",
            calls.len(),
            killed.elapsed()
        );

        // A token made through one host works on another at once.
        let (status, t) = api(&one, &token)
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

        // Stop through host 1: host 2 stops serving it.
        let app_id = watcher.app_id("fn-app").await;
        let (status, body) = watcher
            .call(reqwest::Method::DELETE, &format!("/apps/{app_id}"), None)
            .await;
        assert_eq!(status, 204, "{body}");
        until("the stop reaching host 2", async || {
            let (status, _) = visit(&two, web, "/?seconds=0", &[]).await;
            (status == 404).then_some(())
        })
        .await;
        let mut one = one;
        one.kill_hard();
    }
}
