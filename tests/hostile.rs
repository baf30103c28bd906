//! Hostile clients against the real binary: stalled bodies, slow and idle connections,
//! connection floods, oversized and malformed requests, spinning guests. Each client is
//! a raw TCP socket, so the test controls every byte. The host's timeouts are set small
//! with flags; the time bounds below are sanity limits that only a hung host reaches.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    Host, admin_token, client, example, metric, run_args, server, visit, wasmhost_remote,
};

/// How long a client waits for an answer that must come.
const SANITY: Duration = Duration::from_secs(20);

fn connect(host: &Host) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", host.port)).expect("connect");
    stream.set_read_timeout(Some(SANITY)).unwrap();
    stream
}

/// A request with a whole body that asks the host to close the connection after it.
fn request(method: &str, host_name: &str, path: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_name}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `raw` on a fresh connection and reads the answer until the host closes it.
fn exchange(host: &Host, raw: &[u8]) -> (u16, String) {
    let mut stream = connect(host);
    stream.write_all(raw).expect("send");
    read_answer(&mut stream)
}

/// Reads until the host closes the connection; returns the status and the whole text.
fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer) {
        // A reset after a complete answer still counts as the answer.
        assert!(
            !answer.is_empty() && e.kind() == ErrorKind::ConnectionReset,
            "no answer: {e}"
        );
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    (status_of(&text), text)
}

fn status_of(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// Whether the host closed `stream` (within [`SANITY`]) without answering anything.
fn closed_silently(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        _ => false,
    }
}

/// Polls `probe` until it returns true or [`SANITY`] passes.
fn eventually(mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + SANITY;
    while Instant::now() < deadline {
        if probe() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn stalled_bodies_do_not_hold_the_endpoint() {
    // Four slots, a short queue wait and a longer body deadline: if the stalled requests
    // held slots, the honest request would wait past the queue's second and get 503.
    let host = Host::run(
        &example("echo"),
        &[
            "--max-concurrency",
            "4",
            "--queue-timeout",
            "1s",
            "--body-timeout",
            "4s",
            "--body-min-rate",
            "0",
        ],
    );
    let head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Content-Length: 10\r\n\r\n";
    let mut stalled: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut s = connect(&host);
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, answer) = exchange(
        &host,
        request("POST", "127.0.0.1", "/", "{\"a\":1}").as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"received\":{\"a\":1}"), "{answer}");
    // A GET (405 here) is not held up either.
    let (status, _) = exchange(&host, request("GET", "127.0.0.1", "/", "").as_bytes());
    assert_eq!(status, 405);
    // Each stalled request is answered 408 once its deadline passes.
    for s in stalled.iter_mut().take(4) {
        let (status, answer) = read_answer(s);
        assert_eq!(status, 408, "{answer}");
    }
}

#[test]
fn a_stalled_body_releases_a_streaming_guest() {
    // One slot each: the stalled request holds it until its body deadline passes.
    for (app, path) in [("asgi-app", "/items"), ("wasi-http-proxy", "/echo")] {
        let host = Host::run(
            &example(app),
            &[
                "--max-concurrency",
                "1",
                "--queue-timeout",
                "30s",
                "--body-timeout",
                "1s",
                "--body-min-rate",
                "0",
            ],
        );
        let mut stalled = connect(&host);
        write!(
            stalled,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n{{\"a\""
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let (status, answer) = exchange(&host, request("GET", "127.0.0.1", "/", "").as_bytes());
        assert_eq!(status, 200, "{app}: {answer}");
        if app == "asgi-app" {
            let (status, answer) = read_answer(&mut stalled);
            assert_eq!(status, 408, "{app}: {answer}");
        }
    }
}

#[test]
fn slow_and_idle_connections_are_closed() {
    let host = Host::run(&example("hello"), &["--header-timeout", "1s"]);
    // Half a request head, then nothing (slowloris).
    let mut half = connect(&host);
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    // A connection that never sends a byte.
    let mut silent = connect(&host);
    // A keep-alive connection that goes quiet after one exchange.
    let mut idle = connect(&host);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let started = Instant::now();
    assert!(closed_silently(&mut half), "half-sent head kept open");
    assert!(closed_silently(&mut silent), "silent connection kept open");
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(started.elapsed() < SANITY, "idle keep-alive kept open");
    // The host still serves.
    let (status, _) = exchange(&host, request("GET", "127.0.0.1", "/", "").as_bytes());
    assert_eq!(status, 200);
}

#[test]
fn connections_past_the_cap_get_503_and_the_host_recovers() {
    let host = Host::run(
        &example("hello"),
        &["--max-connections", "8", "--header-timeout", "2s"],
    );
    let idle: Vec<TcpStream> = (0..8).map(|_| connect(&host)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, answer) = exchange(&host, request("GET", "127.0.0.1", "/", "").as_bytes());
    assert_eq!(status, 503, "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    drop(idle);
    assert!(
        eventually(|| exchange(&host, request("GET", "127.0.0.1", "/", "").as_bytes()).0 == 200),
        "no 200 after the idle connections went away"
    );
}

#[test]
fn running_out_of_file_descriptors_backs_off_and_recovers() {
    // A cap far above what the descriptor limit allows: accept itself fails.
    let args = run_args(
        &example("hello"),
        &["--max-connections", "10000", "--header-timeout", "2s"],
    );
    let mut host = Host::start_with_fd_limit(&args, 128);
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", host.port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Once the idle connections time out, descriptors come back and the host answers.
    drop(flood);
    assert!(
        eventually(|| {
            let mut s = connect(&host);
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(request("GET", "127.0.0.1", "/", "").as_bytes());
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer.starts_with("HTTP/1.1 200")
        }),
        "the host did not recover: {}",
        host.log()
    );
    assert!(host.log().contains("accept failed"), "{}", host.log());
    assert!(host.terminate().is_some(), "the host did not stop");
}

#[test]
fn oversized_and_malformed_requests_get_clear_errors() {
    let host = Host::run(&example("hello"), &[]);
    let long_url = format!("/?q={}", "a".repeat(20 << 10));
    let (status, answer) = exchange(&host, request("GET", "127.0.0.1", &long_url, "").as_bytes());
    assert_eq!(status, 414, "{answer}");
    // Many headers that fit hyper's buffer but pass the 128 KiB limit together.
    let mut big = String::from("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for i in 0..20 {
        big.push_str(&format!("X-Big-{i}: {}\r\n", "b".repeat(7 << 10)));
    }
    big.push_str("\r\n");
    assert_eq!(exchange(&host, big.as_bytes()).0, 431);
    // One header far past every buffer.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(1 << 20)
    );
    assert_eq!(exchange(&host, huge.as_bytes()).0, 431);
    for garbage in [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ] {
        assert_eq!(exchange(&host, garbage.as_bytes()).0, 400, "{garbage:?}");
    }
    let (status, _) = exchange(&host, request("GET", "127.0.0.1", "/", "").as_bytes());
    assert_eq!(status, 200);
}

#[test]
fn bare_lf_request_heads_are_refused() {
    let host = Host::run(&example("hello"), &[]);
    for bare in [
        "GET / HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\n",
    ] {
        assert_eq!(exchange(&host, bare.as_bytes()).0, 400, "{bare:?}");
    }
    // The second request of a keep-alive connection is checked too, after a body with
    // line feeds of its own.
    let mut stream = connect(&host);
    let first = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n\n\n";
    let second = "GET / HTTP/1.1\nHost: 127.0.0.1\n\n";
    stream
        .write_all(format!("{first}{second}").as_bytes())
        .unwrap();
    let (_, answer) = read_answer(&mut stream);
    assert!(answer.contains("HTTP/1.1 400"), "{answer}");
    // CRLF requests on the same kind of connection are served.
    let mut stream = connect(&host);
    let ok = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    stream.write_all(ok.as_bytes()).unwrap();
    let (_, answer) = read_answer(&mut stream);
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
}

/// Large bodies cost memory while they are served, and it is given back: the resident
/// memory returns near where it started once the instances are retired. The bound is
/// generous: before the fix these 20 bodies left ~500 MiB behind (40 left ~1.8 GiB, see
/// bench/bodies.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_given_back_after_large_bodies() {
    let host = Host::run(&example("echo"), &["--scaledown-window", "1s"]);
    let url = host.url("/");
    let small = client().post(&url).body(r#""warm""#).send().await.unwrap();
    assert_eq!(small.status(), 200);
    let Some(before) = host.rss_mib() else {
        assert!(std::env::var("CI").is_err(), "no /proc/<pid>/status on CI");
        eprintln!("skipped: this system has no /proc/<pid>/status to read memory from");
        return;
    };
    let body = format!(r#""{}""#, "a".repeat((31 << 20) - 2));
    let mut sends = Vec::new();
    for _ in 0..20 {
        let (url, body) = (url.clone(), body.clone());
        sends.push(tokio::spawn(async move {
            let r = client().post(url).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }));
    }
    drop(body);
    for s in sends {
        assert_eq!(s.await.unwrap(), 200);
    }
    let peak = host.rss_mib().unwrap_or(0);
    let given_back = eventually(|| host.rss_mib().is_some_and(|now| now < before + 96));
    assert!(
        given_back,
        "resident memory stayed at {:?} MiB (before: {before} MiB, after the bodies: {peak} MiB)",
        host.rss_mib()
    );
}

#[test]
fn spinning_guests_do_not_starve_a_healthy_endpoint() {
    let host = Host::run(&example("misbehave"), &[]);
    let ok = request("GET", "misbehave-ok.localhost", "/", "");
    assert_eq!(exchange(&host, ok.as_bytes()).0, 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let (stop, port) = (stop.clone(), host.port);
            std::thread::spawn(move || {
                let spin = request("GET", "misbehave-spin.localhost", "/", "");
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.write_all(spin.as_bytes()).unwrap();
                    let mut answer = String::new();
                    let _ = s.read_to_string(&mut answer);
                    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..20 {
        let (status, answer) = exchange(&host, ok.as_bytes());
        assert_eq!(status, 200, "{answer}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in spinners {
        s.join().expect("spinner");
    }
}

#[tokio::test]
async fn guests_yield_at_ticks_only_while_they_compute() {
    let host = Host::run(&example("misbehave"), &[]);
    let yields = "wasmhost_guest_yields_total";
    assert_eq!(
        visit(&host, "misbehave-ok.localhost", "/", &[]).await.0,
        200
    );
    let before = metric(&host, yields).await;
    // A warm instance called after some ticks have passed: its call starts with a fresh
    // epoch deadline, so it runs through without a yield (unless a tick falls inside
    // the call itself). A deadline left from the previous call made every one yield.
    // On a loaded machine a call's thread may be descheduled across a tick, hence the
    // margin; with the old deadline every one of the 40 yielded (41 yields).
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            visit(&host, "misbehave-ok.localhost", "/", &[]).await.0,
            200
        );
    }
    let quick = metric(&host, yields).await - before;
    assert!(quick < 30.0, "40 short calls yielded {quick} times");
    // A guest spinning until its 1 s limit yields at every tick and is then stopped.
    assert_eq!(
        visit(&host, "misbehave-spin.localhost", "/", &[]).await.0,
        504
    );
    let spun = metric(&host, yields).await - before - quick;
    assert!(spun >= 100.0, "a second of spinning yielded {spun} times");
}

fn mode(path: &std::path::Path) -> u32 {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777
}

#[tokio::test]
async fn server_state_is_private_and_crash_leftovers_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A data directory from an older version: world-readable, with a partial upload.
    std::fs::create_dir_all(data.join("uploads")).unwrap();
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let partial = data.join("uploads").join(".tmpCrashed");
    std::fs::write(&partial, b"\0asm half a component").unwrap();
    let srv = server(&data, &[]);
    assert!(!partial.exists(), "the partial upload is still there");
    let token = admin_token(&data);
    let hello = example("hello").display().to_string();
    let (code, out) = wasmhost_remote(&srv, &token, &["deploy", &hello]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("state.redb")), 0o600);
    for sub in ["components", "uploads", "cache", "volumes"] {
        assert_eq!(mode(&data.join(sub)), 0o700, "{sub}");
    }
    let components: Vec<_> = std::fs::read_dir(data.join("components"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!components.is_empty());
    for file in components {
        assert_eq!(mode(&file) & 0o077, 0, "{}", file.display());
    }
}

#[tokio::test]
async fn an_upload_is_refused_from_its_first_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let token = admin_token(dir.path());
    // 50 MB announced, a web page's first bytes sent, and then nothing: the answer must
    // not wait for the rest (or for the body deadline).
    let mut stream = connect(&srv);
    let head = format!(
        "POST /v1/deployments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 50000000\r\n\r\n<!doctype html><html>"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = stream
        .read(&mut answer)
        .expect("an answer before the body is sent");
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert_eq!(status_of(&answer), 422, "{answer}");
    assert!(answer.contains("not a WebAssembly"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(stream);
    let uploads = dir.path().join("uploads");
    assert!(eventually(|| std::fs::read_dir(&uploads)
        .unwrap()
        .next()
        .is_none()));
    // A core module is refused the same way.
    let mut core = b"\0asm\x01\0\0\0".to_vec();
    core.extend(std::iter::repeat_n(0u8, 1 << 20));
    let api = common::Api { host: &srv, token };
    let (status, body) = api.upload(core, "name=core").await;
    assert_eq!(status, 422, "{body}");
}

/// What schemathesis found against /v1/openapi.json, fixed: undeclared methods, bodies
/// that are not objects, unknown filter values, and revoking the last admin token.
#[tokio::test]
async fn the_api_refuses_what_does_not_fit_its_document() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let token = admin_token(dir.path());
    let send = |method: &str, path: &str, body: Option<&str>| {
        let mut req = client()
            .request(method.parse().unwrap(), srv.url(&format!("/v1{path}")))
            .bearer_auth(&token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        async move {
            let r = req.send().await.unwrap();
            let allow = r
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), allow, r.text().await.unwrap())
        }
    };
    let (status, allow, _) = send("TRACE", "/apps", None).await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET, POST")));
    let (status, _, text) = send("POST", "/tokens", Some("[null, null]")).await;
    assert_eq!(status, 422, "{text}");
    assert_eq!(send("GET", "/apps?state=null", None).await.0, 400);
    assert_eq!(
        send("GET", "/function-calls/fc-x?wait=-1", None).await.0,
        400
    );
    let (status, _, text) = send(
        "DELETE",
        &format!("/tokens/{}", token.split(':').next().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 409, "the last admin token stays: {text}");
    assert_eq!(send("GET", "/apps", None).await.0, 200);
}

#[tokio::test]
async fn unknown_hosts_and_metrics_disclose_nothing_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let token = admin_token(dir.path());
    let private = example("private").display().to_string();
    let (code, out) = wasmhost_remote(&srv, &token, &["deploy", &private]);
    assert_eq!(code, 0, "{out}");
    let (status, body) = visit(&srv, "nope.localhost", "/", &[]).await;
    assert_eq!(status, 404);
    assert!(
        !body.contains("vault") && !body.contains("serves"),
        "the 404 lists served names: {body}"
    );
    let r = client().get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(srv.url("/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("wasmhost_requests_total"));
    // The flag opens it.
    let open_dir = tempfile::tempdir().unwrap();
    let open = server(open_dir.path(), &["--public-metrics"]);
    let r = client().get(open.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn volume_paths_are_percent_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = server(&data, &[]);
    let token = admin_token(&data);
    let (code, out) = wasmhost_remote(&srv, &token, &["volume", "create", "notes"]);
    assert_eq!(code, 0, "{out}");
    let local = dir.path().join("f.txt");
    std::fs::write(&local, "spaced out").unwrap();
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &[
            "volume",
            "put",
            "notes",
            &local.display().to_string(),
            "my dir/my file%.txt",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let stored = data.join("volumes/notes/my dir/my file%.txt");
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), "spaced out");
    let (code, out) = wasmhost_remote(&srv, &token, &["volume", "ls", "notes", "my dir"]);
    assert!(code == 0 && out.contains("my dir/my file%.txt"), "{out}");
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &["volume", "get", "notes", "my dir/my file%.txt"],
    );
    assert_eq!((code, out.as_str()), (0, "spaced out"));
    // Encoded dot-dots stay inside the volume.
    let r = client()
        .put(srv.url("/v1/volumes/notes/files/%2e%2e%2F%2e%2e%2Fescape.txt"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
    assert!(!data.join("escape.txt").exists() && !dir.path().join("escape.txt").exists());
}

/// Creates a token of `scope` with the CLI and returns its bearer value and id.
fn token_with_scope(srv: &Host, admin: &str, scope: &str) -> (String, String) {
    let (code, out) = wasmhost_remote(
        srv,
        admin,
        &["token", "create", "--name", scope, "--scope", scope],
    );
    assert_eq!(code, 0, "{out}");
    let bearer = out
        .lines()
        .find_map(|l| l.strip_prefix("bearer:"))
        .expect("bearer printed")
        .trim()
        .to_string();
    let id = bearer.split(':').next().unwrap().to_string();
    (bearer, id)
}

#[tokio::test]
async fn tokens_have_scopes_and_can_be_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let admin = admin_token(dir.path());
    let private = example("private").display().to_string();
    let (code, out) = wasmhost_remote(&srv, &admin, &["deploy", &private]);
    assert_eq!(code, 0, "{out}");
    let status = |token: String, method: reqwest::Method, path: &'static str| {
        let url = srv.url(&format!("/v1{path}"));
        async move {
            let mut req = client().request(method.clone(), url).bearer_auth(token);
            if method == reqwest::Method::POST {
                req = req.json(&serde_json::json!({"name": "x"}));
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let (proxy, proxy_id) = token_with_scope(&srv, &admin, "proxy-auth");
    let (invoke, _) = token_with_scope(&srv, &admin, "invoke");
    let (deploy, _) = token_with_scope(&srv, &admin, "deploy");
    // A proxy-auth token opens proxy-auth endpoints and nothing under /v1.
    let (key, secret) = proxy.split_once(':').unwrap();
    let vault = "main--private-vault.localhost";
    let headers = [("wasmhost-key", key), ("wasmhost-secret", secret)];
    assert_eq!(visit(&srv, vault, "/", &headers).await.0, 200);
    assert_eq!(status(proxy.clone(), get.clone(), "/apps").await, 403);
    // invoke reads, deploy changes apps, only admin touches tokens and secrets.
    assert_eq!(status(invoke.clone(), get.clone(), "/apps").await, 200);
    assert_eq!(status(invoke.clone(), post.clone(), "/apps").await, 403);
    assert_eq!(status(invoke.clone(), post.clone(), "/tokens").await, 403);
    assert_eq!(status(deploy.clone(), post.clone(), "/apps").await, 201);
    assert_eq!(status(deploy.clone(), get.clone(), "/secrets").await, 403);
    assert_eq!(status(deploy.clone(), post.clone(), "/tokens").await, 403);
    assert_eq!(status(admin.clone(), get.clone(), "/secrets").await, 200);
    // Metrics need a token that may use the API.
    let metrics = |token: String| {
        let url = srv.url("/metrics");
        async move {
            let r = client().get(url).bearer_auth(token).send().await.unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(metrics(proxy.clone()).await, 401);
    assert_eq!(metrics(invoke.clone()).await, 200);
    // Revoked with the CLI, the proxy token stops working at once.
    let (code, out) = wasmhost_remote(&srv, &admin, &["token", "revoke", &proxy_id]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(visit(&srv, vault, "/", &headers).await.0, 401);
    let (code, out) = wasmhost_remote(&srv, &admin, &["token", "list"]);
    assert!(code == 0 && !out.contains(&proxy_id), "{out}");
    assert!(out.contains("invoke") && out.contains("deploy"), "{out}");
    // Revoking again is a 404; a non-admin cannot revoke.
    let r = client()
        .delete(srv.url(&format!("/v1/tokens/{proxy_id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (code, _) = wasmhost_remote(&srv, &deploy, &["token", "revoke", &proxy_id]);
    assert_ne!(code, 0);
}
