//! Helpers for integration tests: build the example guests once, start the real
//! `wasmhost` binary on a free port, and talk HTTP to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--workspace",
            ])
            .current_dir(&examples)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the example guests failed");
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
        Host::start(&args)
    }

    /// Starts the binary with `args`; waits for a line with `http://` and takes its port.
    pub fn start(args: &[String]) -> Host {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmhost"))
            .args(args)
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

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_in(line: &str) -> Option<u16> {
    let rest = line.trim().strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    authority.rsplit(':').next()?.parse().ok()
}

/// Runs `wasmhost <args>` to completion and returns (exit code, stdout + stderr).
pub fn wasmhost(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmhost"))
        .args(args)
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
