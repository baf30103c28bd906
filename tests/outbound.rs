//! Outgoing `wasi:http` requests against a real local HTTP server: a guest reaches the
//! hosts its function declares and nothing else — not another host name of the same
//! server, not through a redirect, not with a relative URL and forged inbound headers —
//! and the refusals and admissions are counted in /metrics.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{
    Host, admin_token, client, example, run_cli, server, shared_cache, visit, wasmhost_remote,
};
use http_body_util::Full;
use serde_json::Value;

/// A local HTTP server that counts the requests it gets: `/hello` answers a greeting,
/// `/redirect?to=<url>` a 302 to `url`, `/big` 4096 bytes.
struct Target {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Target {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(answer(&req)) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn answer<B>(req: &hyper::Request<B>) -> hyper::Response<Full<Bytes>> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let response = hyper::Response::builder();
    let response = if let Some(to) = target.strip_prefix("/redirect?to=") {
        response
            .status(302)
            .header("location", to)
            .body(Bytes::new())
    } else if target == "/big" {
        response.body(Bytes::from(vec![b'x'; 4096]))
    } else if target == "/hello" {
        response.body(Bytes::from_static(b"hello from the target"))
    } else {
        response.status(404).body(Bytes::new())
    };
    response.unwrap().map(Full::new)
}

/// Calls endpoint `fetch` or `fetch-nowhere` of the `outbound` example with `url`.
async fn fetch(host: &Host, endpoint: &str, url: &str, extra: &[(&str, &str)]) -> Value {
    let mut request = client()
        .get(host.url("/"))
        .header("host", format!("outbound-{endpoint}.localhost"))
        .query(&[("url", url)]);
    for (key, value) in extra {
        request = request.query(&[(key, value)]);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The `wasmhost_outbound_requests_total` counter for `decision`.
async fn counted(host: &Host, decision: &str) -> u64 {
    let series = format!("wasmhost_outbound_requests_total{{decision=\"{decision}\"}}");
    common::try_metric(host, &series).await.unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_reaches_only_the_hosts_its_endpoint_declares() {
    let target = Target::start().await;
    let port = target.port;
    let host = Host::run(&example("outbound"), &[]);

    // Declared: `http://localhost:*`.
    let ok = fetch(
        &host,
        "fetch",
        &format!("http://localhost:{port}/hello"),
        &[],
    )
    .await;
    assert_eq!(ok["status"], 200, "{ok}");
    assert_eq!(ok["body"], "hello from the target");
    assert_eq!(target.hits(), 1);

    // The same server under another name, another scheme: refused before any connection.
    for url in [
        format!("http://127.0.0.1:{port}/hello"),
        format!("https://localhost:{port}/hello"),
    ] {
        let refused = fetch(&host, "fetch", &url, &[]).await;
        assert_eq!(refused["error"], "HttpRequestDenied", "{url}: {refused}");
        assert_eq!(refused["status"], Value::Null);
    }
    assert_eq!(target.hits(), 1);

    // A redirect reaches the guest as a 3xx; following it is a new request, checked again.
    let hop = format!("http://localhost:{port}/redirect?to=http://127.0.0.1:{port}/hello");
    let seen = fetch(&host, "fetch", &hop, &[]).await;
    assert_eq!(seen["status"], 302, "{seen}");
    assert_eq!(seen["location"], format!("http://127.0.0.1:{port}/hello"));
    let followed = fetch(&host, "fetch", &hop, &[("follow", "true")]).await;
    assert_eq!(followed["error"], "HttpRequestDenied", "{followed}");
    assert_eq!(
        target.hits(),
        3,
        "only the two redirects reached the server"
    );

    // Forged inbound headers naming the target do not make a relative request go there.
    let forged = client()
        .get(host.url("/"))
        .header("host", "outbound-fetch.localhost")
        .header("x-forwarded-host", format!("localhost:{port}"))
        .header("forwarded", format!("host=localhost:{port}"))
        .query(&[("url", "/hello")])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(forged["status"], Value::Null, "{forged}");
    assert!(forged["error"].is_string(), "{forged}");

    // An endpoint that declares nothing may reach nothing.
    let url = format!("http://localhost:{port}/hello");
    let none = fetch(&host, "fetch-nowhere", &url, &[]).await;
    assert_eq!(none["error"], "HttpRequestDenied", "{none}");
    assert_eq!(target.hits(), 3);

    // The relative request never reaches the check: wasi:http cannot build it without a
    // host, so four refusals were the allow-list's.
    assert_eq!(counted(&host, "allowed").await, 3);
    assert_eq!(counted(&host, "denied").await, 4);
    assert!(common::wait_log(&host, "not in allowed_outbound_hosts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_uses_its_own_allow_list() {
    let target = Target::start().await;
    let port = target.port;
    let wasm = example("outbound").display().to_string();
    let cache = shared_cache().display().to_string();
    let call = |url: String| {
        let args = serde_json::json!([url]).to_string();
        let (wasm, cache) = (wasm.clone(), cache.clone());
        tokio::task::spawn_blocking(move || {
            run_cli(
                &[
                    "run",
                    &wasm,
                    "--function",
                    "fetch_fn",
                    "--args",
                    &args,
                    "--cache-dir",
                    &cache,
                ],
                &[],
            )
        })
    };
    let (code, out) = call(format!("http://localhost:{port}/hello"))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("hello from the target"), "{out}");
    let (_, out) = call(format!("http://127.0.0.1:{port}/hello"))
        .await
        .unwrap();
    assert!(out.contains("error: HttpRequestDenied"), "{out}");
    assert_eq!(target.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_component_gets_what_the_operator_allows() {
    let target = Target::start().await;
    let port = target.port;
    let allowed = format!("http://localhost:{port}");
    let host = Host::run(
        &example("wasi-http-proxy"),
        &[
            "--allow-outbound",
            &allowed,
            "--outbound-max-response",
            "1000",
        ],
    );
    let get = async |path: String, host_header: Option<String>| {
        let mut request = client().get(host.url(&path));
        if let Some(name) = host_header {
            request = request.header("host", name);
        }
        request.send().await.unwrap().text().await.unwrap()
    };

    let ok = get(format!("/fetch?url=http://localhost:{port}/hello"), None).await;
    assert_eq!(ok, "200 hello from the target");
    // Another port of the same host is not the one allowed.
    let other = get(
        format!("/fetch?url=http://localhost:{}/hello", port + 1),
        None,
    )
    .await;
    assert_eq!(other, "refused: ErrorCode::HttpRequestDenied", "{other}");
    // The inbound Host names the allowed target; a relative request still goes nowhere.
    let forged = get(
        "/fetch?url=/hello".into(),
        Some(format!("localhost:{port}")),
    )
    .await;
    assert!(forged.starts_with("refused:"), "{forged}");
    // A response past --outbound-max-response is refused.
    let big = get(format!("/fetch?url=http://localhost:{port}/big"), None).await;
    assert!(big.contains("HttpResponseBodySize"), "{big}");
    assert_eq!(target.hits(), 2);

    // Without the flag, nothing is allowed.
    let closed = Host::run(&example("wasi-http-proxy"), &[]);
    let path = format!("/fetch?url=http://localhost:{port}/hello");
    let (_, text) = visit(&closed, "localhost", &path, &[]).await;
    assert_eq!(text, "refused: ErrorCode::HttpRequestDenied", "{text}");
    assert_eq!(target.hits(), 2);

    let (code, out) = run_cli(
        &[
            "run",
            &example("wasi-http-proxy").display().to_string(),
            "--allow-outbound",
            "localhost:80",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(out.contains("missing `://`"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_operator_grants_a_plain_component_in_the_config_file() {
    let target = Target::start().await;
    let port = target.port;
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().join("data"), dir.path().join("wasmhost.toml"));
    let grant = format!(
        "[functions.\"proxy.proxy\"]\nallowed_outbound_hosts = [\"http://localhost:{port}\"]\n"
    );
    std::fs::write(&config, grant).unwrap();
    let config_arg = config.display().to_string();
    let srv = server(&data, &["--config", &config_arg]);
    let token = admin_token(&data);
    let wasm = example("wasi-http-proxy").display().to_string();
    for app in ["proxy", "other"] {
        let (code, out) = wasmhost_remote(&srv, &token, &["deploy", &wasm, "--name", app]);
        assert_eq!(code, 0, "{out}");
    }
    let path = format!("/fetch?url=http://localhost:{port}/hello");
    let (_, granted) = visit(&srv, "main--proxy-proxy.localhost", &path, &[]).await;
    assert_eq!(granted, "200 hello from the target");
    // The grant names one app's function; another app of the same component has none.
    let (_, other) = visit(&srv, "main--other-other.localhost", &path, &[]).await;
    assert_eq!(other, "refused: ErrorCode::HttpRequestDenied");
    assert_eq!(target.hits(), 1);

    // A malformed grant stops the server at start with the entry's fault.
    std::fs::write(
        &config,
        "[functions.\"a.b\"]\nallowed_outbound_hosts = [\"localhost\"]\n",
    )
    .unwrap();
    let other_data = dir.path().join("other").display().to_string();
    let (code, out) = run_cli(
        &[
            "server",
            "--data-dir",
            &other_data,
            "--port",
            "0",
            "--config",
            &config_arg,
        ],
        &[],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("missing `://`"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_guest_fetches_only_what_its_function_declares() {
    if !common::python::python_available("python_outbound") {
        return;
    }
    let target = Target::start().await;
    let port = target.port;
    let host = Host::run(&common::python::python_example("hello"), &[]);
    let fetch = async |url: String, via: &str| -> Value {
        let response = client()
            .get(host.url("/"))
            .header("host", "hello-py-fetch.localhost")
            .query(&[("url", url.as_str()), ("via", via)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    };

    // Declared (`http://localhost:*`): through `wasmhost.http.fetch` and through urllib.
    for via in ["fetch", "urllib"] {
        let ok = fetch(format!("http://localhost:{port}/hello"), via).await;
        assert_eq!(ok["status"], 200, "{via}: {ok}");
        assert_eq!(ok["body"], "hello from the target", "{via}");
    }
    assert_eq!(target.hits(), 2);

    // Another name of the same server: a clear refusal, before any connection.
    for via in ["fetch", "urllib"] {
        let url = format!("http://127.0.0.1:{port}/hello");
        let refused = fetch(url.clone(), via).await;
        assert_eq!(refused["denied"], true, "{via}: {refused}");
        assert_eq!(
            refused["error"],
            format!(
                "the host refused the request to {url}: http://127.0.0.1:{port} is not in \
                 this function's allowed_outbound_hosts"
            )
        );
    }
    assert_eq!(target.hits(), 2);

    // Allowed but nobody listens: the network's error code, not a refusal.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let failed = fetch(format!("http://localhost:{closed_port}/"), "fetch").await;
    assert_eq!(failed["denied"], false, "{failed}");
    assert_eq!(failed["code"], "ConnectionRefused", "{failed}");
}
