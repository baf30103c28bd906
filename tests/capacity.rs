//! Backpressure and metrics: bursts above capacity wait in a bounded queue instead of
//! failing; past the bound they get 503 with Retry-After; `/metrics` counts it all. Warm
//! instances are reused (typed endpoints, and wasi:http proxies on request), scale to zero, and
//! `#[wasmhost::init]` work is baked into a snapshot.

mod common;

use common::{Api, Host, admin_token, client, example, metric, server, visit};

async fn burst(host: &Host, n: usize) -> Vec<(u16, bool)> {
    let requests = (0..n).map(|_| {
        let url = host.url("/?seconds=0.4");
        async move {
            let r = client()
                .get(url)
                .header("host", "functions-slow-web.localhost")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        }
    });
    futures_util::future::join_all(requests).await
}

#[tokio::test]
async fn bursts_wait_in_the_queue_and_only_past_its_bound_are_refused() {
    let host = Host::run(
        &example("functions"),
        &["--max-concurrency", "2", "--queue-depth", "4"],
    );
    // 2 running + 4 waiting: everything is served, just later.
    let answers = burst(&host, 6).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    // 2 running + 4 waiting + 6 more: the extra ones are refused with Retry-After.
    let answers = burst(&host, 12).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!(ok + refused.len(), 12, "{answers:?}");
    assert!(
        ok >= 6,
        "at least capacity + queue were served: {answers:?}"
    );
    assert!(
        !refused.is_empty(),
        "nothing was refused past the bound: {answers:?}"
    );
    assert!(refused.iter().all(|(_, retry)| *retry), "{answers:?}");
    // And the host is still fine.
    assert!(burst(&host, 1).await.iter().all(|(s, _)| *s == 200));
    let metrics = client()
        .get(host.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"wasmhost_rejected_total{app="functions",function="slow_web"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_format() {
    let host = Host::run(&example("hello"), &[]);
    for _ in 0..3 {
        let r = client().get(host.url("/?name=m")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // The host's own /metrics, on the bare address even though one endpoint owns it.
    let r = client().get(host.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = r.text().await.unwrap();
    for needle in [
        r#"wasmhost_requests_total{app="hello",function="hello",status="2xx"} 3"#,
        "# TYPE wasmhost_request_seconds histogram",
        "wasmhost_instances_created_total",
        "wasmhost_instantiate_seconds_count",
        "wasmhost_instances_live",
        "wasmhost_queue_depth",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in:\n{body}");
    }
    assert!(
        body.contains("wasmhost_compiles_total") && body.contains("wasmhost_cache_hits_total"),
        "{body}"
    );
}

/// The value of the series `series` (name and labels) in the host's /metrics.
async fn gauge(host: &Host, series: &str) -> Option<i64> {
    common::try_metric(host, series).await.map(|v| v as i64)
}

/// The `wasmhost_instances_live` gauge from the host's /metrics.
async fn live_instances(host: &Host) -> i64 {
    gauge(host, "wasmhost_instances_live").await.unwrap_or(-1)
}

async fn visits(host: &Host, query: &str) -> (u16, String) {
    visit(
        host,
        "misbehave-visits.localhost",
        &format!("/{query}"),
        &[],
    )
    .await
}

#[tokio::test]
async fn warm_instances_are_reused_and_a_trapped_one_is_discarded() {
    let host = Host::run(&example("misbehave"), &[]);
    // One warm instance serves request after request: its state persists.
    assert_eq!(visits(&host, "").await, (200, "1".into()));
    assert_eq!(visits(&host, "").await, (200, "2".into()));
    assert_eq!(visits(&host, "").await, (200, "3".into()));
    // It traps: it is thrown away, and the next request starts afresh.
    assert_eq!(visits(&host, "?trap=true").await.0, 500);
    assert_eq!(visits(&host, "").await, (200, "1".into()));
}

#[tokio::test]
async fn an_endpoint_can_ask_for_per_request_isolation_itself() {
    let host = Host::run(&example("misbehave"), &[]);
    for _ in 0..3 {
        let r = client()
            .get(host.url("/"))
            .header("host", "misbehave-isolated-visits.localhost")
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "1");
    }
}

#[tokio::test]
async fn per_request_isolation_gives_every_request_a_fresh_instance() {
    let host = Host::run(&example("misbehave"), &["--isolation", "per-request"]);
    for _ in 0..3 {
        assert_eq!(visits(&host, "").await, (200, "1".into()));
    }
}

/// `wasmhost_instances_created_total` from the host's /metrics.
async fn instances_created(host: &Host) -> i64 {
    gauge(host, "wasmhost_instances_created_total")
        .await
        .unwrap_or(0)
}

#[tokio::test]
async fn per_request_isolation_holds_for_wsgi_and_asgi_apps() {
    for app in ["wsgi-app", "asgi-app"] {
        let host = Host::run(&example(app), &["--isolation", "per-request"]);
        let before = instances_created(&host).await;
        for _ in 0..3 {
            let r = client().get(host.url("/")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{app}");
        }
        assert_eq!(
            instances_created(&host).await - before,
            3,
            "{app}: one fresh instance per request"
        );
        // An ASGI instance is retired (lifespan shutdown) after its response has gone out.
        let kept = eventually(|| live_instances(&host), |n| *n == 0).await;
        assert_eq!(kept, 0, "{app}: none kept");
    }
}

#[tokio::test]
async fn a_web_apps_first_instance_is_started_and_warmed_at_deploy() {
    for app in ["wsgi-app", "asgi-app"] {
        let host = Host::run(&example(app), &[]);
        assert_eq!(
            live_instances(&host).await,
            1,
            "{app}: primed before traffic"
        );
        // Loading may have run `describe` in an instance of its own: count from here.
        let before = instances_created(&host).await;
        let r = client().get(host.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{app}");
        assert_eq!(
            instances_created(&host).await,
            before,
            "{app}: the first request found the primed instance"
        );
    }
}

#[tokio::test]
async fn a_single_reused_endpoints_first_instance_is_started_at_deploy() {
    let host = Host::run(&example("hello"), &[]);
    assert_eq!(live_instances(&host).await, 1, "primed before traffic");
    let before = instances_created(&host).await;
    let r = client().get(host.url("/?name=Ada")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        instances_created(&host).await,
        before,
        "the first request found the primed instance"
    );
    // Per-request isolation: nothing is kept for it.
    let isolated = Host::run(&example("hello"), &["--isolation", "per-request"]);
    assert_eq!(live_instances(&isolated).await, 0);
    // Several endpoints: the first request could be for any, so none is kept.
    let several = Host::run(&example("misbehave"), &[]);
    assert_eq!(live_instances(&several).await, 0);
}

#[tokio::test]
async fn idle_instances_scale_to_zero_after_the_window() {
    let host = Host::run(&example("misbehave"), &["--scaledown-window", "0.3s"]);
    assert_eq!(visits(&host, "").await, (200, "1".into()));
    assert_eq!(
        visits(&host, "").await,
        (200, "2".into()),
        "reused while warm"
    );
    assert_eq!(
        live_instances(&host).await,
        1,
        "one warm instance while busy"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        live_instances(&host).await,
        0,
        "the idle instance was retired"
    );
    assert_eq!(
        visits(&host, "").await,
        (200, "1".into()),
        "a fresh instance after scaling to zero"
    );
}

#[tokio::test]
async fn min_containers_stay_warm_through_the_window() {
    let host = Host::run(
        &example("misbehave"),
        &["--min-containers", "1", "--scaledown-window", "0.3s"],
    );
    // misbehave has 7 reusable endpoints; each gets one warm instance before any request.
    let warmed = eventually(|| live_instances(&host), |n| *n >= 7).await;
    assert_eq!(warmed, 7);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        live_instances(&host).await,
        7,
        "min_containers were scaled away"
    );
    assert_eq!(
        visits(&host, "").await,
        (200, "1".into()),
        "the pre-warmed instance served it"
    );
    assert_eq!(visits(&host, "").await, (200, "2".into()));
}

async fn proxy_visits(host: &Host, path: &str) -> (u16, String) {
    visit(host, "wasi-http-proxy-wasi-http-proxy.localhost", path, &[]).await
}

#[tokio::test]
async fn wasi_http_proxy_instances_are_reused_on_request_and_a_trapped_one_is_discarded() {
    let host = Host::run(&example("wasi-http-proxy"), &["--isolation", "reuse"]);
    assert_eq!(proxy_visits(&host, "/visits").await, (200, "1".into()));
    assert_eq!(proxy_visits(&host, "/visits").await, (200, "2".into()));
    // Other routes run on the same instance in between.
    assert_eq!(proxy_visits(&host, "/").await.0, 200);
    assert_eq!(proxy_visits(&host, "/visits").await, (200, "3".into()));
    assert!(proxy_visits(&host, "/trap").await.0 >= 500);
    assert_eq!(
        proxy_visits(&host, "/visits").await,
        (200, "1".into()),
        "the trapped instance was reused"
    );
}

#[tokio::test]
async fn wasi_http_proxy_with_per_request_isolation_starts_fresh_each_time() {
    let host = Host::run(&example("wasi-http-proxy"), &["--isolation", "per-request"]);
    for _ in 0..3 {
        assert_eq!(proxy_visits(&host, "/visits").await, (200, "1".into()));
    }
}

/// Polls `probe` every 50 ms for up to 5 s until `done` holds; returns the last value.
async fn eventually<T, F: Future<Output = T>>(
    mut probe: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let mut value = probe().await;
    for _ in 0..100 {
        if done(&value) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        value = probe().await;
    }
    value
}

/// Whether the host logged `text` (its output reaches the test through reader threads,
/// stdout and stderr apart, so it may lag the response).
async fn logged(host: &Host, text: &str) -> bool {
    eventually(|| async { host.log().contains(text) }, |found| *found).await
}

async fn lookup(host: &Host) -> serde_json::Value {
    client()
        .get(host.url("/?n=97"))
        .header("host", "preinit-lookup.localhost")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn init_work_is_baked_into_a_snapshot_that_every_instance_starts_from() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let args = ["--isolation", "per-request", "--cache-dir", &cache_dir];
    let host = Host::run(&example("preinit"), &args);
    let (first, second) = (lookup(&host).await, lookup(&host).await);
    assert_eq!(first["table_size"], 114_155, "{first}");
    assert_eq!(first["prime"], true);
    // Two fresh instances, one init run: both carry the state it left.
    assert_eq!(first["initialised_at_ns"], second["initialised_at_ns"]);
    let metrics = client()
        .get(host.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("wasmhost_snapshots_total 1"), "{metrics}");
    // What init printed reached the log, and printing did not leave the snapshot with a
    // stale stdout handle (that would trap every request).
    assert!(logged(&host, "built 114155 primes").await, "{}", host.log());
    drop(host);
    // After a restart the snapshot comes from the cache: init does not run again.
    let host = Host::run(&example("preinit"), &args);
    assert_eq!(
        lookup(&host).await["initialised_at_ns"],
        first["initialised_at_ns"]
    );
    assert!(
        logged(&host, "init work from its cached snapshot").await,
        "{}",
        host.log()
    );
}

#[tokio::test]
async fn without_a_snapshot_init_runs_in_every_new_instance() {
    let host = Host::run(
        &example("preinit"),
        &["--isolation", "per-request", "--no-snapshot"],
    );
    let (first, second) = (lookup(&host).await, lookup(&host).await);
    assert_eq!(first["table_size"], 114_155, "{first}");
    assert_ne!(first["initialised_at_ns"], second["initialised_at_ns"]);
}

#[tokio::test]
async fn a_failing_init_is_refused_at_deploy_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let api = Api {
        host: &srv,
        token: admin_token(dir.path()),
    };
    let (status, body) = api
        .upload(std::fs::read(example("bad-init")).unwrap(), "name=bad-init")
        .await;
    assert_eq!(status, 422, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("init"), "{body}");
    assert!(detail.contains("the model weights are missing"), "{body}");
    assert_eq!(api.get("/apps").await["data"], serde_json::json!([]));
    let (status, body) = api
        .upload(std::fs::read(example("preinit")).unwrap(), "name=preinit")
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, text) = visit(&srv, "main--preinit-lookup.localhost", "/?n=97", &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""table_size":114155"#), "{text}");
}

/// A per-function gauge from /metrics, e.g. `wasmhost_function_instances_idle`.
async fn function_gauge(host: &Host, name: &str, app: &str, function: &str) -> i64 {
    let series = format!("{name}{{app=\"{app}\",function=\"{function}\"}}");
    gauge(host, &series).await.unwrap_or(0)
}

#[tokio::test]
async fn buffer_containers_keep_idle_instances_ready_under_traffic() {
    let host = Host::run(&example("misbehave"), &["--buffer-containers", "2"]);
    let idle = |h| function_gauge(h, "wasmhost_function_instances_idle", "misbehave", "visits");
    assert_eq!(idle(&host).await, 0, "nothing starts before traffic");
    assert_eq!(visits(&host, "").await.0, 200);
    let ready = eventually(|| idle(&host), |n| *n >= 2).await;
    assert!(ready >= 2, "the buffer was not refilled: {ready} idle");
    let live = function_gauge(
        &host,
        "wasmhost_function_instances_live",
        "misbehave",
        "visits",
    );
    assert_eq!(live.await, ready, "every live instance of it is idle");
}

#[tokio::test]
async fn the_server_config_file_overrides_a_functions_scaling() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmhost.toml");
    std::fs::write(
        &config,
        "[functions.\"misbehave.visits\"]\nisolation = \"per-request\"\nmax_containers = 3\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let config = config.display().to_string();
    let srv = server(&data, &["--config", &config]);
    let api = Api {
        host: &srv,
        token: admin_token(&data),
    };
    let (status, body) = api
        .upload(
            std::fs::read(example("misbehave")).unwrap(),
            "name=misbehave",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let visits = body["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "visits")
        .unwrap();
    assert_eq!(visits["max_containers"], 3, "{visits}");
    // The guest reuses instances; the operator asked for a fresh one per request.
    for _ in 0..2 {
        let r = visit(&srv, "main--misbehave-visits.localhost", "/", &[]).await;
        assert_eq!(r, (200, "1".into()));
    }
}

#[tokio::test]
async fn past_the_hosts_instance_limit_requests_get_503_and_it_recovers() {
    let host = Host::run(&example("misbehave"), &["--max-instances", "1"]);
    let get = |name: &'static str| {
        let url = host.url("/");
        async move {
            let r = client()
                .get(url)
                .header("host", format!("misbehave-{name}.localhost"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        }
    };
    // `spin` holds the only instance slot until its 1 s timeout.
    let spinning = tokio::spawn(get("spin"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(get("ok").await, (503, true));
    assert_eq!(spinning.await.unwrap().0, 504);
    assert_eq!(get("ok").await.0, 200, "the slot came back");
}

#[tokio::test]
async fn a_full_pool_evicts_the_longest_idle_instance_to_serve_another_endpoint() {
    let host = Host::run(&example("misbehave"), &["--max-instances", "1"]);
    assert_eq!(visits(&host, "").await, (200, "1".into()));
    assert_eq!(visits(&host, "").await, (200, "2".into()));
    // `visits` keeps the only slot warm; `ok` needs it, so the idle instance goes.
    let ok = visit(&host, "misbehave-ok.localhost", "/", &[]).await;
    assert_eq!(ok.0, 200, "{ok:?}");
    assert!(
        logged(&host, "evicted an idle instance").await,
        "{}",
        host.log()
    );
    assert_eq!(
        visits(&host, "").await,
        (200, "1".into()),
        "the evicted instance's state is gone"
    );
}

/// More deployed apps than `--max-loaded-components` allows: a call loads its app's code
/// (evicting the one used least recently), every answer is right, the docs of an evicted
/// app come from its manifest without loading it, and after a restart no code is loaded
/// until an app is called.
#[tokio::test]
async fn more_apps_than_the_code_budget_all_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cache = common::shared_cache().display().to_string();
    let args = [
        "--max-loaded-components",
        "2",
        "--public-metrics",
        "--cache-dir",
        &cache,
    ];
    let mut srv = server(&data, &args);
    let hello = std::fs::read(example("hello")).unwrap();
    let names = ["dense-0", "dense-1", "dense-2", "dense-3"];
    {
        let api = Api {
            host: &srv,
            token: admin_token(&data),
        };
        for name in names {
            let (status, body) = api.upload(hello.clone(), &format!("name={name}")).await;
            assert_eq!(status, 201, "{body}");
        }
    }
    let call_all = async |srv: &Host, round: usize| {
        for name in names {
            let host = format!("main--{name}-hello.localhost");
            let (status, body) = visit(srv, &host, &format!("/?name={name}.{round}"), &[]).await;
            assert_eq!(status, 200, "{name}: {body}\n{}", srv.log());
            assert!(body.contains(&format!("Hello, {name}.{round}!")), "{body}");
        }
    };
    call_all(&srv, 0).await;
    call_all(&srv, 1).await;
    // Four apps through two slots, in turn: every call after the first two evicted one.
    assert!(metric(&srv, "wasmhost_code_evictions_total").await >= 6.0);
    assert_eq!(metric(&srv, "wasmhost_code_loaded").await, 2.0);
    let loads = metric(&srv, "wasmhost_code_loads_total").await;
    let (status, docs) = visit(&srv, "main--dense-0-hello.localhost", "/openapi.json", &[]).await;
    assert_eq!(status, 200, "{docs}");
    assert!(docs.contains("Greets"), "{docs}");
    assert_eq!(metric(&srv, "wasmhost_code_loads_total").await, loads);

    srv.terminate();
    let srv = server(&data, &args);
    assert_eq!(metric(&srv, "wasmhost_code_loaded").await, 0.0);
    call_all(&srv, 2).await;
    assert_eq!(metric(&srv, "wasmhost_code_loads_total").await, 4.0);
    assert_eq!(metric(&srv, "wasmhost_compiles_total").await, 0.0);
}
