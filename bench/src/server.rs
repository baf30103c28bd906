//! The servers under test, each its own process: how to start one, know it is up, read
//! its memory and stop it. Also the bare hyper hello server (the ceiling), which runs as
//! `wasmhost-bench hyper-server`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::load::{Conn, Target};

/// One server to measure: a command line (`{port}` is replaced by a free port).
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Row label in the results.
    pub label: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Path and query each request asks for.
    pub path: String,
}

impl ServerSpec {
    pub fn new(label: &str, program: impl Into<PathBuf>, args: &[&str], path: &str) -> Self {
        Self {
            label: label.into(),
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            path: path.into(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line, as the results file shows it.
    pub fn display(&self) -> String {
        let program = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let env: String = self.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        format!("{env}{program} {}", self.args.join(" "))
    }
}

/// A started server process.
pub struct Running {
    child: Child,
    pub target: Target,
    /// From spawning to the first line that names an `http://` address.
    pub announced_after: Duration,
    started: Instant,
}

impl Running {
    /// Starts `spec` on a free port and waits until it prints an `http://` address on
    /// stdout or stderr (wasmhost prints its URLs, `wasmtime serve` "Serving HTTP on").
    pub async fn start(spec: &ServerSpec) -> anyhow::Result<Self> {
        let port = free_port()?;
        let args = spec
            .args
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()));
        let started = Instant::now();
        let mut child = Command::new(&spec.program)
            .args(args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", spec.program.display()))?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        drain(stdout, tx.clone());
        drain(stderr, tx);
        let mut seen = String::new();
        let deadline = started + Duration::from_secs(120);
        loop {
            let line = tokio::time::timeout_at(deadline.into(), rx.recv()).await;
            match line {
                Ok(Some(line)) if line.contains("http://") => break,
                Ok(Some(line)) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Ok(None) => bail!("{} exited before listening:\n{seen}", spec.display()),
                Err(_) => bail!("{} did not listen within 120 s:\n{seen}", spec.display()),
            }
        }
        let announced_after = started.elapsed();
        let target = Target {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            path: spec.path.clone(),
        };
        Ok(Self {
            child,
            target,
            announced_after,
            started,
        })
    }

    /// Time since the process was spawned.
    pub fn since_spawn(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until a request succeeds (some servers announce before they accept).
    pub async fn ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            match Conn::open(self.target.addr).await {
                Ok(mut c) => match c.get(&self.target).await {
                    Ok(reply) if reply.ok() => return Ok(()),
                    Ok(reply) => last = format!("status {}", reply.status),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("{} never answered 2xx: {last}", self.target.addr)
    }

    /// Resident memory of the server process (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.child.id().and_then(|pid| status_kib(pid, "VmRSS:"))
    }

    /// Peak resident memory of the server process (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.child.id().and_then(|pid| status_kib(pid, "VmHWM:"))
    }

    /// wasmhost's Prometheus counters that show reuse, from `GET /metrics`.
    pub async fn wasmhost_metrics(&self) -> Option<InstanceMetrics> {
        let mut conn = Conn::open(self.target.addr).await.ok()?;
        let reply = conn.get_path(&self.target, "/metrics").await.ok()?;
        if !reply.ok() {
            return None;
        }
        let text = String::from_utf8_lossy(&reply.body);
        Some(InstanceMetrics {
            created: metric_sum(&text, "instances_created_total")?,
            live: metric_sum(&text, "instances_live")?,
            requests: metric_sum(&text, "requests_total")?,
        })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Instance counts from wasmhost's `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstanceMetrics {
    /// Instances created so far (instance cold starts).
    pub created: f64,
    /// Instances alive now.
    pub live: f64,
    /// HTTP requests served so far.
    pub requests: f64,
}

/// The sum over labels of a Prometheus metric whose name ends with `suffix`.
fn metric_sum(text: &str, suffix: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name.split('{').next().unwrap_or_default();
        if name.ends_with(suffix)
            && let Ok(v) = value.parse::<f64>()
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Forwards each line a child writes to `tx` (and keeps draining so it never blocks).
fn drain(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    tx: mpsc::UnboundedSender<String>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
}

/// A port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A `kB` field (`VmRSS:`, `VmHWM:`) of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, field)
}

/// `VmRSS` of this process, in KiB.
pub fn own_rss_kib() -> Option<u64> {
    own_status_kib("VmRSS:")
}

/// A `kB` field of this process's `/proc/self/status` (`RssAnon:`, `RssFile:`, ...).
pub fn own_status_kib(field: &str) -> Option<u64> {
    status_kib(std::process::id(), field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The bare hyper hello server: HTTP/1.1 keep-alive, a fixed body, nothing else.
pub async fn hyper_hello(port: u16) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    println!("http://{}/", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"hello from hyper"),
                )))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t    4321 kB\nThreads:\t1\n";
        assert_eq!(super::parse_status_kib(status, "VmRSS:"), Some(4321));
        assert_eq!(super::parse_status_kib(status, "VmPeak:"), Some(100));
        assert_eq!(super::parse_status_kib("Name:\tx\n", "VmRSS:"), None);
    }

    #[test]
    fn sums_a_metric_over_labels() {
        let text = "# HELP wasmhost_instances_live Instances alive now.\n\
            wasmhost_instances_live{app=\"a\"} 3\n\
            wasmhost_instances_live{app=\"b\"} 2\n\
            wasmhost_instances_created_total 7\n";
        assert_eq!(super::metric_sum(text, "instances_live"), Some(5.0));
        assert_eq!(
            super::metric_sum(text, "instances_created_total"),
            Some(7.0)
        );
        assert_eq!(super::metric_sum(text, "requests_total"), None);
    }
}
