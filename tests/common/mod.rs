//! Helpers for integration tests: build the example guests once, start the real
//! `wasmhost` binary on a free port, and talk HTTP to it.

#![allow(dead_code)]

pub mod postgres;
pub mod python;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_owned()
}

/// Builds every example guest once per test process and returns the directory of the `.wasm` files.
pub fn examples() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let examples = root().join("examples");
        // `concurrent` enables the SDK's `async` feature and the app and class examples
        // its `apps` feature; built with the others, feature unification would give every
        // example async handlers (and the concurrent engine) and the apps' exports.
        const APPS: [&str; 3] = ["asgi-app", "wsgi-app", "counter-cls"];
        let mut plain = vec!["--workspace", "--exclude", "concurrent"];
        let mut apps = Vec::new();
        for app in APPS {
            plain.extend(["--exclude", app]);
            apps.extend(["-p", app]);
        }
        let builds: [&[&str]; 3] = [&plain, &apps, &["-p", "concurrent"]];
        for packages in builds {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--release", "--target", "wasm32-wasip2"])
                .args(packages)
                .current_dir(&examples)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the example guests failed");
        }
        examples.join("target/wasm32-wasip2/release")
    })
}

/// Path of one example's component (libraries are named with `_`, binaries keep `-`).
pub fn example(name: &str) -> PathBuf {
    let library = examples().join(format!("{}.wasm", name.replace('-', "_")));
    if library.exists() {
        return library;
    }
    examples().join(format!("{name}.wasm"))
}

/// A cache directory shared by the tests of one run, so each example compiles once.
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasmhost-test-cache")
}

/// A running `wasmhost` process; killed on drop.
pub struct Host {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// Every line it printed on stdout and stderr so far.
    pub output: Arc<Mutex<Vec<String>>>,
}

impl Host {
    /// Starts `wasmhost run <wasm> --port 0 <extra>` and waits until it prints its URL.
    pub fn run(wasm: &Path, extra: &[&str]) -> Host {
        Host::start(&run_args(wasm, extra))
    }

    /// Starts the binary with `args`; waits for a line with `http://` and takes its port.
    pub fn start(args: &[String]) -> Host {
        Host::start_with_env(args, &[])
    }

    /// Like [`Host::start`], with extra environment variables.
    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Host {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhost"));
        command.args(args).envs(env.iter().copied());
        Host::start_command(command)
    }

    /// Like [`Host::start`], with the process's file-descriptor limit (soft and hard) set
    /// to `nofile`.
    pub fn start_with_fd_limit(args: &[String], nofile: u32) -> Host {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_wasmhost"))
            .args(args);
        Host::start_command(command)
    }

    /// Runs `command` (which starts the binary) and waits until it prints a URL.
    pub fn start_command(mut command: Command) -> Host {
        let mut child = command
            .env("WASMHOST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wasmhost starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let (tx, output) = (tx.clone(), output.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let port = loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    if let Some(port) = port_in(&line) {
                        break port;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "wasmhost printed no URL; output:\n{}",
                        output.lock().unwrap().join("\n")
                    );
                }
            }
        };
        Host {
            child,
            port,
            output,
        }
    }

    /// The process's resident memory in MiB (Linux), if it can be read.
    pub fn rss_mib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024)
    }

    /// Kills the process with SIGKILL, as `kill -9` does, and reaps it.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process to exit; returns its exit code.
    pub fn interrupt(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Asks the process to stop (SIGTERM, as Ctrl-C would) and waits up to 20 s for it.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Everything printed so far, joined.
    pub fn log(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

/// The arguments of `wasmhost run <wasm> --port 0 <extra>` with the shared cache.
pub fn run_args(wasm: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        wasm.display().to_string(),
        "--port".into(),
        "0".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--cache-dir") {
        args.push("--cache-dir".into());
        args.push(shared_cache().display().to_string());
    }
    args
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_in(line: &str) -> Option<u16> {
    let rest = &line[line.find("http://")? + "http://".len()..];
    let authority = rest.split(|c: char| c == '/' || c.is_whitespace()).next()?;
    authority.rsplit(':').next()?.parse().ok()
}

/// Starts `wasmhost server --data-dir <dir> --port 0 <extra>` and waits until it listens.
pub fn server(data_dir: &Path, extra: &[&str]) -> Host {
    let mut args = vec![
        "server".to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--port".into(),
        "0".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Host::start(&args)
}

/// The admin bearer token a server wrote into its data directory.
pub fn admin_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin-token"))
        .expect("admin-token exists")
        .trim()
        .to_string()
}

/// Runs `wasmhost <args>` against a server (WASMHOST_SERVER/WASMHOST_TOKEN set).
pub fn wasmhost_remote(host: &Host, token: &str, args: &[&str]) -> (i32, String) {
    run_cli(
        args,
        &[
            ("WASMHOST_SERVER", &host.url("")),
            ("WASMHOST_TOKEN", token),
        ],
    )
}

/// Runs `wasmhost <args>` to completion and returns (exit code, stdout + stderr).
pub fn wasmhost(args: &[&str]) -> (i32, String) {
    run_cli(args, &[])
}

/// Runs `wasmhost <args>` with extra environment variables to completion and returns
/// (exit code, stdout + stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmhost"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("wasmhost runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// An HTTP client for tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A client of a server's /v1 API.
pub struct Api<'a> {
    /// The server.
    pub host: &'a Host,
    /// A bearer token.
    pub token: String,
}

impl Api<'_> {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = client()
            .request(method, self.host.url(&format!("/v1{path}")))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn upload(&self, bytes: Vec<u8>, query: &str) -> (u16, Value) {
        let r = client()
            .post(self.host.url(&format!("/v1/deployments?{query}")))
            .bearer_auth(&self.token)
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Deploys example `example` as `app` with the CLI; returns its functions by name.
    pub async fn deploy_example(
        &self,
        example_name: &str,
        app: &str,
    ) -> std::collections::HashMap<String, Value> {
        let wasm = example(example_name).display().to_string();
        let (code, out) =
            wasmhost_remote(self.host, &self.token, &["deploy", &wasm, "--name", app]);
        assert_eq!(code, 0, "{out}");
        let app_id = self.app_id(app).await;
        self.get(&format!("/apps/{app_id}/functions")).await["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_owned(), f.clone()))
            .collect()
    }

    /// Calls function `function_id` with positional `args` and waits for it: (status, call).
    pub async fn invoke(&self, function_id: &str, args: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/functions/{function_id}/invocations"),
            Some(serde_json::json!({ "args": args })),
        )
        .await
    }

    /// The ids of app `app`'s functions, by name.
    pub async fn function_ids(&self, app: &str) -> std::collections::HashMap<String, String> {
        let app_id = self.app_id(app).await;
        self.get(&format!("/apps/{app_id}/functions")).await["data"]
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
    }

    pub async fn app_id(&self, name: &str) -> String {
        let apps = self.get("/apps").await;
        apps["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .expect("app listed")["app_id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// GET on a named host of the server; returns status and body text.
pub async fn visit(host: &Host, name: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = client().get(host.url(path)).header("host", name);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of the series `series` (name and labels) in the host's /metrics.
pub async fn metric(host: &Host, series: &str) -> f64 {
    try_metric(host, series)
        .await
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

/// Waits until the host's log contains `needle` (its reader threads run behind).
pub fn wait_log(host: &Host, needle: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if host.log().contains(needle) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// The value of the series `series` (name and labels) in the host's /metrics, if present.
pub async fn try_metric(host: &Host, series: &str) -> Option<f64> {
    let text = client()
        .get(host.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}
