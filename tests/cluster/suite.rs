//! The store's behaviour, the same on redb and PostgreSQL (run by `on_both_backends!`).

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

pub fn an_apps_functions_are_found_without_the_others(b: &Backend) {
    let s = b.open();
    let both = manifest(vec![endpoint("b", None), endpoint("a", None)]);
    let one = s.deploy(&req("one", "d1", &both)).unwrap();
    let two = s
        .deploy(&req("two", "d2", &manifest(vec![endpoint("a", None)])))
        .unwrap();
    s.deploy(&req("one", "d3", &manifest(vec![endpoint("a", None)])))
        .unwrap();
    let names = |app_id: &str| -> Vec<(String, bool)> {
        s.app_functions(app_id)
            .unwrap()
            .into_iter()
            .map(|f| (f.name, f.active))
            .collect()
    };
    assert_eq!(
        names(&one.app.app_id),
        [("a".to_string(), true), ("b".to_string(), false)]
    );
    assert_eq!(names(&two.app.app_id), [("a".to_string(), true)]);
    let listed = s.list_functions(&one.app.app_id).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].function_id, one.functions[1].function_id);
    s.delete_app(&two.app.app_id).unwrap();
    assert!(names(&two.app.app_id).is_empty());
    assert_eq!(names(&one.app.app_id).len(), 2);
    assert!(names("ap-none").is_empty());
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
    assert!(
        pollster::block_on(s.verify_bearer(&t.bearer()))
            .unwrap()
            .is_some()
    );
    assert!(
        pollster::block_on(s.verify_token(&t.token_id, "wrong"))
            .unwrap()
            .is_none()
    );
    assert!(
        pollster::block_on(s.verify_token("tk-nope", &t.token_secret))
            .unwrap()
            .is_none()
    );
    assert!(
        pollster::block_on(s.verify_bearer("garbage"))
            .unwrap()
            .is_none()
    );
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
    assert!(
        pollster::block_on(s.verify_bearer(&t.bearer()))
            .unwrap()
            .is_none()
    );
    assert!(!s.revoke_token(&t.token_id).unwrap());
    // The last admin token stays: without it no token could be made again.
    let first = s.create_token("admin", Scope::Admin).unwrap();
    assert!(matches!(
        s.revoke_token(&first.token_id),
        Err(StoreError::Conflict(_))
    ));
    let second = s.create_token("admin 2", Scope::Admin).unwrap();
    assert!(s.revoke_token(&first.token_id).unwrap());
    assert!(
        pollster::block_on(s.verify_bearer(&second.bearer()))
            .unwrap()
            .is_some()
    );
    // Tokens made before scopes existed are admin tokens.
    let old = r#"{"token_id":"tk-1","name":"n","secret_hash":"00","salt":"00","created_at":"t"}"#;
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
        Database::InMemory => unreachable!("the suite runs on redb files and PostgreSQL"),
    }
    assert!(s.claim_orphaned_calls().unwrap().is_empty());
}

pub fn calls_are_found_by_function_state_and_age(b: &Backend) {
    let s = b.open();
    let of = |function: &str, id: &str, status: CallStatus, created_at: &str| CallRecord {
        function_id: function.into(),
        ..call(id, status, created_at)
    };
    for i in 0..6 {
        let function = if i % 2 == 0 { "fu-even" } else { "fu-odd" };
        let created = format!("2026-01-01T00:00:0{i}.000Z");
        s.put_call(&of(
            function,
            &format!("fc-{i}"),
            CallStatus::Pending,
            &created,
        ))
        .unwrap();
    }
    let ids =
        |calls: Vec<CallRecord>| -> Vec<String> { calls.into_iter().map(|c| c.call_id).collect() };
    assert_eq!(
        ids(s.list_calls("fu-even", 10).unwrap()),
        ["fc-4", "fc-2", "fc-0"]
    );
    assert_eq!(ids(s.list_calls("fu-odd", 2).unwrap()), ["fc-5", "fc-3"]);
    assert!(s.list_calls("fu-none", 10).unwrap().is_empty());
    // fc-0 finishes early, fc-2 late, fc-4 stays open.
    for (id, finished) in [
        ("fc-0", "2026-01-01T00:01:00.000Z"),
        ("fc-2", "2026-01-01T00:09:00.000Z"),
    ] {
        assert!(
            s.update_call(id, |c| {
                c.status = CallStatus::Success;
                c.finished_at = Some(finished.into());
                true
            })
            .unwrap()
        );
    }
    // The sweep takes only what finished before its cutoff; open calls stay whatever
    // their age.
    assert_eq!(s.purge_calls("2026-01-01T00:05:00.000Z").unwrap(), 1);
    assert!(s.get_call("fc-0").unwrap().is_none());
    assert_eq!(ids(s.list_calls("fu-even", 10).unwrap()), ["fc-4", "fc-2"]);
    assert_eq!(s.purge_calls("2026-01-01T00:05:00.000Z").unwrap(), 0);
    assert_eq!(s.purge_calls("2026-01-01T00:10:00.000Z").unwrap(), 1);
    assert_eq!(ids(s.list_calls("fu-even", 10).unwrap()), ["fc-4"]);
    drop(s);
    if let Database::Embedded = b.database {
        let s = b.open();
        let open = ids(s.claim_orphaned_calls().unwrap());
        assert_eq!(open, ["fc-1", "fc-3", "fc-4", "fc-5"], "oldest first");
    }
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

/// A batch of lines keeps its order: PostgreSQL numbers a batch's rows in one statement.
pub fn a_batch_of_log_lines_keeps_its_order(b: &Backend) {
    let s = b.open();
    let base = s.last_log_seq().unwrap();
    let lines: Vec<LogEntry> = (0..300u64)
        .map(|i| LogEntry {
            seq: base + 1 + i,
            time: "2026-01-01T00:00:01.000Z".into(),
            app_id: "a".into(),
            function: "f".into(),
            call_id: (i % 3 != 0).then(|| "c1".to_owned()),
            stream: LogStream::Stdout,
            text: format!("line {i}"),
        })
        .collect();
    s.append_logs(&lines).unwrap();
    let texts = |v: Vec<LogEntry>| v.into_iter().map(|e| e.text).collect::<Vec<_>>();
    let all = LogQuery {
        limit: 1000,
        ..Default::default()
    };
    let written = s.app_logs("a", &all).unwrap();
    assert_eq!(texts(written.clone()), texts(lines.clone()));
    assert!(written.windows(2).all(|w| w[0].seq < w[1].seq));
    let of_call: Vec<_> = lines.into_iter().filter(|l| l.call_id.is_some()).collect();
    assert_eq!(texts(s.call_logs("c1").unwrap()), texts(of_call));
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

pub fn changes_name_the_apps_they_touch(b: &Backend) {
    let s = b.open();
    let start = s.change_seq().unwrap();
    let m = manifest(vec![endpoint("a", None)]);
    let alpha = s.deploy(&req("alpha", "d1", &m)).unwrap();
    let after_alpha = s.change_seq().unwrap();
    let changed = s.changes_since(start).unwrap().unwrap();
    assert_eq!(changed.seq, after_alpha);
    assert_eq!(changed.apps, std::slice::from_ref(&alpha.app.app_id));

    let beta = s.deploy(&req("beta", "d2", &m)).unwrap();
    s.set_label(&alpha.functions[0].function_id, "greeter")
        .unwrap();
    s.set_app_state(&beta.app.app_id, AppState::Stopped)
        .unwrap();
    let ephemeral = s.create_app("main", "main", "scratch", true).unwrap();
    s.delete_app(&ephemeral.app_id).unwrap();
    // Neither an unchanged redeploy nor a refused label is a change.
    let quiet = s.change_seq().unwrap();
    assert!(!s.deploy(&req("alpha", "d1", &m)).unwrap().changed);
    assert!(
        s.set_label(&beta.functions[0].function_id, "greeter")
            .is_err()
    );
    assert_eq!(s.change_seq().unwrap(), quiet);

    let changed = s.changes_since(after_alpha).unwrap().unwrap();
    assert_eq!(changed.seq, quiet);
    // Each app once, in the order of its first change since then.
    assert_eq!(
        changed.apps,
        [beta.app.app_id, alpha.app.app_id, ephemeral.app_id]
    );
    // Up to date: nothing to follow.
    let none = s.changes_since(quiet).unwrap().unwrap();
    assert_eq!((none.seq, none.apps.len()), (quiet, 0));
}

pub fn current_versions_are_read_at_once(b: &Backend) {
    let s = b.open();
    let m = manifest(vec![endpoint("a", None)]);
    s.deploy(&req("alpha", "d1", &m)).unwrap();
    let alpha = s.deploy(&req("alpha", "d2", &m)).unwrap().app;
    let beta = s.deploy(&req("beta", "d3", &m)).unwrap().app;
    let gamma = s.create_app("main", "main", "gamma", false).unwrap();
    let found = s.current_versions(&[&alpha, &beta, &gamma]).unwrap();
    assert_eq!(found.len(), 2, "gamma has no version yet");
    let (a, b) = (&found[&alpha.app_id], &found[&beta.app_id]);
    assert_eq!((a.version, a.digest.as_str()), (2, "d2"));
    assert_eq!((b.version, b.digest.as_str()), (1, "d3"));
    assert!(s.current_versions(&[]).unwrap().is_empty());
}

/// Many writers at once, their records sharing statements and commits, some writing
/// the same calls: every record lands, and a call that is over keeps its outcome.
pub fn calls_written_at_once_all_land(b: &Backend) {
    let s = std::sync::Arc::new(b.open());
    let at = "2026-01-01T00:00:01.000Z";
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    // Every writer's own call: pending, running, success.
                    let own = format!("fc-{w}-{i}");
                    for status in [CallStatus::Pending, CallStatus::Running] {
                        assert!(s.put_call(&call(&own, status, at)).unwrap());
                    }
                    assert!(s.put_call(&call(&own, CallStatus::Success, at)).unwrap());
                    // Calls every writer writes at about the same time; writer 0 ends them.
                    let shared = format!("fc-shared-{i}");
                    let status = if w == 0 {
                        CallStatus::Failure
                    } else {
                        CallStatus::Running
                    };
                    s.put_call(&call(&shared, status, at)).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("a writer panicked");
    }
    for w in 0..8 {
        for i in 0..25 {
            let own = s.get_call(&format!("fc-{w}-{i}")).unwrap().unwrap();
            assert_eq!(own.status, CallStatus::Success);
        }
    }
    for i in 0..25 {
        let shared = s.get_call(&format!("fc-shared-{i}")).unwrap().unwrap();
        assert_eq!(shared.status, CallStatus::Failure, "fc-shared-{i}");
    }
    assert!(s.claim_orphaned_calls().unwrap().is_empty());
}

/// The calls over among many, in one read: unknown and open ones are left out.
pub fn calls_over_are_found_among_many(b: &Backend) {
    let s = b.open();
    let at = "2026-01-01T00:00:01.000Z";
    for (id, status) in [
        ("fc-a", CallStatus::Running),
        ("fc-b", CallStatus::Terminated),
        ("fc-c", CallStatus::Success),
        ("fc-d", CallStatus::Pending),
    ] {
        s.put_call(&call(id, status, at)).unwrap();
    }
    let ids: Vec<String> = ["fc-a", "fc-b", "fc-c", "fc-d", "fc-gone"]
        .map(str::to_owned)
        .into();
    let mut over: Vec<(String, CallStatus)> = s
        .calls_over(&ids)
        .unwrap()
        .into_iter()
        .map(|c| (c.call_id, c.status))
        .collect();
    over.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        over,
        [
            ("fc-b".to_owned(), CallStatus::Terminated),
            ("fc-c".to_owned(), CallStatus::Success)
        ]
    );
    assert!(s.calls_over(&[]).unwrap().is_empty());
}

/// A call that is over keeps its outcome: a later write of it (an attempt's record sent
/// before a cancel landed) changes nothing, and says so.
pub fn a_finished_call_is_not_written_over(b: &Backend) {
    let s = b.open();
    let at = "2026-01-01T00:00:01.000Z";
    assert!(s.put_call(&call("fc-1", CallStatus::Running, at)).unwrap());
    assert!(
        s.put_call(&call("fc-1", CallStatus::Terminated, at))
            .unwrap()
    );
    assert!(!s.put_call(&call("fc-1", CallStatus::Running, at)).unwrap());
    assert!(!s.put_call(&call("fc-1", CallStatus::Success, at)).unwrap());
    let stored = s.get_call("fc-1").unwrap().unwrap();
    assert_eq!(stored.status, CallStatus::Terminated);
    // Nor is it open again: nothing resumes it.
    assert!(s.claim_orphaned_calls().unwrap().is_empty());
}
