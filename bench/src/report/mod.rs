//! The results as Markdown: the machine, the tables, and the targets with what
//! misses them.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::{Results, Role, ServerResult};

mod checks;
mod tables;

use checks::targets;
use tables::{cold_start, instantiation, memory, pre_init, throughput};

/// What the numbers were measured on.
#[derive(Debug, Default)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub date: String,
    pub commit: String,
    pub rustc: String,
    /// `wasmtime --version`, when it runs.
    pub wasmtime: Option<String>,
    /// Share of the CPUs busy with other work for a second before the run and after it.
    pub busy_before: Option<f64>,
    pub busy_after: Option<f64>,
}

/// Busy and total jiffies over all CPUs, from `/proc/stat`.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// The share of the machine's CPU time that was busy during the next second (this
/// process sleeps meanwhile, so it is other work).
pub fn cpu_busy() -> Option<f64> {
    let (b0, t0) = cpu_jiffies()?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (b1, t1) = cpu_jiffies()?;
    (t1 > t0).then(|| (b1 - b0) as f64 / (t1 - t0) as f64)
}

impl Machine {
    pub fn collect(root: &Path, wasmtime: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let commit = match command_line(root, "git", &["rev-parse", "--short", "HEAD"]) {
            Some(c) => {
                let dirty = command_line(root, "git", &["status", "--porcelain"])
                    .is_some_and(|s| !s.is_empty());
                if dirty {
                    format!("{c} (with local changes)")
                } else {
                    c
                }
            }
            None => "unknown".into(),
        };
        Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            commit,
            rustc: command_line(root, "rustc", &["--version"]).unwrap_or_default(),
            wasmtime: command_line(root, &wasmtime.to_string_lossy(), &["--version"]),
            busy_before: cpu_busy(),
            busy_after: None,
        }
    }
}

/// The trimmed stdout of a command that succeeded.
fn command_line(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(super) fn us(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e6;
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

pub(super) fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

pub(super) fn row(results: &Results, role: Role) -> Option<&ServerResult> {
    results.servers.iter().find(|s| s.role == role)
}

pub(super) fn rps(server: Option<&ServerResult>, c: usize) -> Option<f64> {
    server?
        .loads
        .iter()
        .find(|l| l.concurrency == c)
        .map(|l| l.rps)
}

/// Instances created per request under load, from wasmhost's `/metrics`.
pub(super) fn instances_per_request(server: &ServerResult) -> Option<f64> {
    let (a, b) = (server.metrics_ready?, server.metrics_idle?);
    let requests = b.requests - a.requests;
    (requests > 0.0).then(|| (b.created - a.created) / requests)
}

/// RSS per idle warm instance of `component`: the reuse process against the per-request
/// one after the same load, divided by the instances the reuse process keeps. Also a
/// cross-check from each process's own growth (after start → idle after the load).
pub fn warm_instance_kib(results: &Results, component: &str) -> Option<(f64, f64, Option<f64>)> {
    let find = |roles: &[Role]| {
        results
            .servers
            .iter()
            .find(|s| s.component == component && roles.contains(&s.role))
    };
    let reuse = find(&[Role::Reuse, Role::OtherReuse])?;
    let fresh = find(&[Role::PerRequest, Role::OtherPerRequest])?;
    let live = reuse.metrics_idle?.live - fresh.metrics_idle.map_or(0.0, |m| m.live);
    if live < 1.0 {
        return None;
    }
    let kib = |k: Option<u64>| k.map(|k| k as f64);
    let extra = kib(reuse.rss_idle_kib)? - kib(fresh.rss_idle_kib)?;
    let growth = |s: &ServerResult| Some(kib(s.rss_idle_kib)? - kib(s.rss_ready_kib)?);
    let added = reuse.metrics_idle?.live - reuse.metrics_ready?.live;
    let cross = match (growth(reuse), growth(fresh)) {
        (Some(a), Some(b)) if added >= 1.0 => Some((a - b) / added),
        _ => None,
    };
    Some((extra / live, live, cross))
}

/// The whole results file.
pub fn render(results: &Results) -> String {
    let mut s = String::new();
    let w = &mut s;
    header(w, results);
    throughput(w, results);
    instantiation(w, results);
    cold_start(w, results);
    pre_init(w, results);
    memory(w, results);
    targets(w, results);
    if !results.skipped.is_empty() {
        let _ = writeln!(w, "\n## Skipped\n");
        for note in &results.skipped {
            let _ = writeln!(w, "- {note}");
        }
    }
    s
}

fn header(w: &mut String, results: &Results) {
    let m = &results.machine;
    let busy = [m.busy_before, m.busy_after]
        .iter()
        .any(|b| b.is_some_and(|b| b > 0.1));
    let _ = writeln!(w, "# wasmhost benchmark results\n");
    let _ = writeln!(
        w,
        "Written by `bench/run.sh` (`cargo run --release -p wasmhost-bench`); rerun it rather \
         than editing this file. All servers ran on this machine in one run, each as its own \
         process, with the load generator (an in-process hyper client: HTTP/1.1, keep-alive, \
         `c` connections each sending one request after another) sharing the same cores.\n"
    );
    let _ = writeln!(w, "| | |\n| --- | --- |");
    let _ = writeln!(w, "| date | {} |", m.date);
    let _ = writeln!(w, "| cores (nproc) | {} |", m.cores);
    let _ = writeln!(w, "| CPU | {} |", m.cpu);
    let _ = writeln!(w, "| kernel | {} |", m.kernel);
    let _ = writeln!(w, "| wasmhost | {} |", m.commit);
    let peer = m.wasmtime.as_deref().unwrap_or("wasmtime not installed");
    let _ = writeln!(w, "| peer | {peer} |");
    let _ = writeln!(w, "| rustc | {} |", m.rustc);
    let pct = |b: Option<f64>| b.map_or("–".into(), |b| format!("{:.0} %", b * 100.0));
    let _ = writeln!(
        w,
        "| CPU busy with other work | {} before the run, {} after it |",
        pct(m.busy_before),
        pct(m.busy_after)
    );
    let _ = writeln!(w, "| method | {} |", results.options);
    if busy {
        let _ = writeln!(
            w,
            "\n**The machine was busy with other work** (over 10 % of its CPU time before or \
             after the run): it competed with the servers, so expect wider spreads and lower \
             numbers than on an idle machine."
        );
    }
}
