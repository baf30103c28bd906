//! The results as Markdown: the machine, the tables, and the targets with what
//! misses them.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::{Results, Role, ServerResult};

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

fn us(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e6;
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn row(results: &Results, role: Role) -> Option<&ServerResult> {
    results.servers.iter().find(|s| s.role == role)
}

fn rps(server: Option<&ServerResult>, c: usize) -> Option<f64> {
    server?
        .loads
        .iter()
        .find(|l| l.concurrency == c)
        .map(|l| l.rps)
}

/// Instances created per request under load, from wasmhost's `/metrics`.
fn instances_per_request(server: &ServerResult) -> Option<f64> {
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

/// A target and how the run compares.
struct Check {
    target: String,
    measured: String,
    verdict: String,
    missed: bool,
    why: String,
}

/// For "at least `want`" targets.
fn at_least(got: f64, want: f64, unit: &str) -> (String, bool) {
    if got >= want {
        ("met".into(), false)
    } else {
        (
            format!(
                "**missed**: {got:.2}{unit} of {want:.2}{unit} ({:.1} % short)",
                (1.0 - got / want) * 100.0
            ),
            true,
        )
    }
}

/// Marks a verdict whose rounds fell on both sides of the target.
fn borderline(verdict: String, missed: bool, worst_meets: bool, best_meets: bool) -> String {
    match (missed, worst_meets, best_meets) {
        (false, false, _) => format!("{verdict} (borderline: not in every round)"),
        (true, _, true) => format!("{verdict}; borderline: met in some rounds"),
        _ => verdict,
    }
}

/// For "at most `limit`" targets.
fn at_most(got: f64, limit: f64, unit: &str) -> (String, bool) {
    let ratio = got / limit;
    let over = if ratio < 1.5 {
        format!("{:.0} % over", (ratio - 1.0) * 100.0)
    } else {
        format!("{ratio:.1}× over")
    };
    match got <= limit {
        true => ("met".into(), false),
        false => (
            format!("**missed**: {got:.1} {unit} vs ≤ {limit} {unit} ({over})"),
            true,
        ),
    }
}

const WHY_PER_REQUEST: &str = "Per request, wasmhost and `wasmtime serve` do the same work on \
    this component: a new Store (WASI and HTTP contexts, resource table, limiter, epoch \
    deadline), an instance from the pooling allocator, the guest's `handle`, and on drop the \
    slot's reset (`madvise`, TLB shootdowns) with copy-on-write faults on its next use. That \
    fixed cost dominates a hello handler, so the two land close to each other; wasmhost adds \
    its gateway (routing, CORS header, metrics, the per-endpoint concurrency limit). Beating \
    the peer by 1.2× needs a cheaper store and slot reset, not a faster front end.";

const WHY_REUSE_TYPED: &str = "With reuse, a typed endpoint skips instantiation, yet each \
    request still crosses the gateway (routing, metrics, the concurrency limit and queue), \
    is converted to the guest's request record, decoded and answered as JSON inside the guest \
    (SDK argument parsing, serde), runs on a wasmtime fiber with a fresh deadline, and goes \
    back through hyper. Against a bare hyper hello that does none of this, on two cores shared \
    with the load generator, that work is what separates the two.";

const WHY_INSTANTIATION: &str = "`Store::new` plus instantiation from the `InstancePre` \
    builds the WASI context (environment, clocks, random, stdio pipes) and the resource \
    table for every store, and the pooling allocator maps the memory image copy-on-write \
    on each instantiation. Getting under 10 µs needs a cheaper store (a lazily built WASI \
    context); with reuse (the default) most requests do not instantiate at all.";

const WHY_FIRST_BYTE: &str = "The first request on a fresh process pays one-off costs: \
    first-touch page faults in the mmapped native code and the pool slot, lazily \
    initialised host state (the gateway, tokio's blocking pool) and cold CPU caches. \
    Later requests on the same host answer much faster (see the \"2nd request\" column).";

fn why_restart(results: &Results) -> String {
    let exec = match results.exec_floor {
        Some(d) => format!(
            "merely executing the {:.0} MB binary (`wasmhost --version`: loading, relocating, \
             exiting) takes {} ms here, ",
            results.binary_bytes as f64 / 1e6,
            ms(d)
        ),
        None => String::new(),
    };
    format!(
        "Nearly all of it is spent before the host listens (the \"start, warm cache\" column): \
         {exec}then the engine is built — the pooling allocator reserves its address space and \
         protects a guard page on each of its fiber stacks (one `mprotect` per slot, 500 by \
         default), the linker gets WASI, wasi:http and the host interfaces — the cached native \
         code is mapped, wasmhost guests run `describe`, and tokio starts. Reaching 5 ms needs \
         a leaner serving binary and a lazily grown pool, not a faster request path."
    )
}

const WHY_MEMORY: &str = "Each warm instance keeps its linear memory's dirty pages (the \
    guest's stack, heap and data it wrote), its tables and vmctx, the Store with the WASI \
    context and resource table, and its fiber stack's touched pages.";

fn checks(results: &Results) -> Vec<Check> {
    let c = results
        .servers
        .iter()
        .flat_map(|s| s.loads.iter().map(|l| l.concurrency))
        .max()
        .unwrap_or(64);
    let peer = row(results, Role::Peer);
    let ceiling = row(results, Role::Ceiling);
    let mut out = Vec::new();
    let mut ratio_check = |target: &str,
                           a: Option<&ServerResult>,
                           b: Option<&ServerResult>,
                           want: f64,
                           why: String| {
        let (measured, verdict, missed) = match (rps(a, c), rps(b, c)) {
            (Some(x), Some(y)) if y > 0.0 => {
                let (mut verdict, missed) = at_least(x / y, want, "×");
                let low = match (rps(a, 1), rps(b, 1)) {
                    (Some(x1), Some(y1)) if y1 > 0.0 && c != 1 => {
                        format!("; c=1: {:.2}×", x1 / y1)
                    }
                    _ => String::new(),
                };
                let (ra, rb) = (a.map(|s| s.round_rps(c)), b.map(|s| s.round_rps(c)));
                let per_round: Vec<f64> = match (ra, rb) {
                    (Some(ra), Some(rb)) => ra.iter().zip(&rb).map(|(x, y)| x / y).collect(),
                    _ => Vec::new(),
                };
                let (lo, hi) = per_round
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
                let mut range = String::new();
                if per_round.len() > 1 {
                    range = format!(" (rounds {lo:.2}–{hi:.2}×)");
                    verdict = borderline(verdict, missed, lo >= want, hi >= want);
                }
                (
                    format!("c={c}: {x:.0} / {y:.0} req/s = {:.2}×{range}{low}", x / y),
                    verdict,
                    missed,
                )
            }
            _ => ("not measured (see Skipped)".into(), "n/a".into(), false),
        };
        out.push(Check {
            target: target.into(),
            measured,
            verdict,
            missed,
            why,
        });
    };
    let reuse = row(results, Role::Reuse);
    let typed = row(results, Role::OtherReuse);
    let why_reuse_proxy = match reuse.and_then(instances_per_request) {
        Some(n) if n >= 0.5 => format!(
            "wasmhost does not reuse wasi:http proxy instances: under `--isolation reuse` its \
             `/metrics` counted {n:.2} instances created per request, so this row does the \
             per-request work (see the per-request target). Reusing a proxy instance (calling \
             its `handle` again) is what would close the gap; the typed endpoint shows what \
             reuse gains."
        ),
        _ => WHY_REUSE_TYPED.to_string(),
    };
    ratio_check(
        "warm reuse ≥ 3× `wasmtime serve` (same wasi:http component)",
        reuse,
        peer,
        3.0,
        why_reuse_proxy.clone(),
    );
    ratio_check(
        "warm reuse ≥ 60 % of bare hyper (same wasi:http component)",
        reuse,
        ceiling,
        0.6,
        why_reuse_proxy,
    );
    ratio_check(
        "warm reuse ≥ 3× `wasmtime serve` (typed hello endpoint vs the peer's proxy)",
        typed,
        peer,
        3.0,
        WHY_REUSE_TYPED.into(),
    );
    ratio_check(
        "warm reuse ≥ 60 % of bare hyper (typed hello endpoint)",
        typed,
        ceiling,
        0.6,
        WHY_REUSE_TYPED.into(),
    );
    ratio_check(
        "per-request isolation ≥ 1.2× `wasmtime serve` (same wasi:http component)",
        row(results, Role::PerRequest),
        peer,
        1.2,
        WHY_PER_REQUEST.into(),
    );
    for i in &results.instantiation {
        let (mut verdict, missed) = at_most(i.mean.as_secs_f64() * 1e6, 10.0, "µs");
        let (lo, hi) = i.mean_range;
        let limit = Duration::from_micros(10);
        if i.rounds > 1 {
            verdict = borderline(verdict, missed, hi <= limit, lo <= limit);
        }
        out.push(Check {
            target: format!("instantiation ≤ 10 µs ({})", i.component),
            measured: format!(
                "mean {} µs over {} (rounds {}–{} µs)",
                us(i.mean),
                i.count,
                us(lo),
                us(hi)
            ),
            verdict,
            missed,
            why: WHY_INSTANTIATION.into(),
        });
    }
    for cold in &results.cold {
        let first = cold.first_byte_after_restart.as_secs_f64() * 1e3;
        let (verdict, missed) = at_most(first, 1.0, "ms");
        out.push(Check {
            target: format!("cold first byte ≤ 1 ms, host up ({})", cold.component),
            measured: format!(
                "{} ms (median of {})",
                ms(cold.first_byte_after_restart),
                cold.runs
            ),
            verdict,
            missed,
            why: WHY_FIRST_BYTE.into(),
        });
        let spawn = cold.spawn_to_first_byte_warm.as_secs_f64() * 1e3;
        let (verdict, missed) = at_most(spawn, 5.0, "ms");
        out.push(Check {
            target: format!(
                "first byte ≤ 5 ms after a restart, cache warm ({})",
                cold.component
            ),
            measured: format!(
                "{} ms from process start (median of {})",
                ms(cold.spawn_to_first_byte_warm),
                cold.runs
            ),
            verdict,
            missed,
            why: why_restart(results),
        });
    }
    let mut memory_measured = false;
    for component in [crate::PROXY, crate::HELLO] {
        if let Some((kib, live, _)) = warm_instance_kib(results, component) {
            memory_measured = true;
            let (verdict, missed) = match kib > 0.0 {
                true => at_most(kib, 256.0, "KiB"),
                false => ("inconclusive: the noise exceeds the signal".into(), false),
            };
            out.push(Check {
                target: format!("idle warm instance ≤ 256 KiB resident ({component})"),
                measured: format!(
                    "{kib:.0} KiB: `wasmhost run` RSS with reuse minus per-request after the \
                     same load, over the {live:.0} idle instances it kept"
                ),
                verdict,
                missed,
                why: WHY_MEMORY.into(),
            });
        }
    }
    if let Some(memory) = &results.memory {
        for (name, kib) in &memory.per_instance_kib {
            let (verdict, missed) = at_most(*kib, 256.0, "KiB");
            memory_measured = true;
            out.push(Check {
                target: format!("idle instance ≤ 256 KiB resident ({name}, never called)"),
                measured: format!(
                    "{kib:.1} KiB per live instance (engine API, {} held)",
                    memory.held_instances
                ),
                verdict,
                missed,
                why: WHY_MEMORY.into(),
            });
        }
    }
    if !memory_measured {
        out.push(Check {
            target: "idle warm instance ≤ 256 KiB resident".into(),
            measured: "not measured".into(),
            verdict: "n/a".into(),
            missed: false,
            why: String::new(),
        });
    }
    out.push(Check {
        target: "pre-initialised guest ≤ 2 ms".into(),
        measured: "not measured: wasmhost has no wizer pre-initialisation yet".into(),
        verdict: "n/a".into(),
        missed: false,
        why: String::new(),
    });
    out
}

/// The whole results file.
pub fn render(results: &Results) -> String {
    let mut s = String::new();
    let w = &mut s;
    header(w, results);
    throughput(w, results);
    instantiation(w, results);
    cold_start(w, results);
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

fn throughput(w: &mut String, results: &Results) {
    let _ = writeln!(w, "\n## Throughput and latency\n");
    let _ = writeln!(
        w,
        "Each row is the median of the rounds (its p50/p99 are that round's); \"spread\" is \
         half the range of requests/s over the rounds, relative to the median.\n"
    );
    let hyper = row(results, Role::Ceiling);
    let peer = row(results, Role::Peer);
    let _ = writeln!(
        w,
        "| server | c | req/s | spread | p50 µs | p99 µs | errors | × wasmtime serve | \
         % of bare hyper |"
    );
    let _ = writeln!(
        w,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for server in &results.servers {
        for load in &server.loads {
            let ratio =
                |other: Option<&ServerResult>, percent: bool| match rps(other, load.concurrency) {
                    Some(y) if y > 0.0 && percent => format!("{:.0} %", load.rps / y * 100.0),
                    Some(y) if y > 0.0 => format!("{:.2}×", load.rps / y),
                    _ => "–".into(),
                };
            let rounds = server.round_rps(load.concurrency);
            let spread = match rounds.len() {
                0 | 1 => "–".to_string(),
                _ => {
                    let (lo, hi) = rounds
                        .iter()
                        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
                    format!("±{:.0} %", (hi - lo) / 2.0 / load.rps.max(1.0) * 100.0)
                }
            };
            let _ = writeln!(
                w,
                "| {} | {} | {:.0} | {spread} | {} | {} | {} | {} | {} |",
                server.spec.label,
                load.concurrency,
                load.rps,
                us(load.p50),
                us(load.p99),
                load.errors,
                ratio(peer, false),
                ratio(hyper, true),
            );
        }
    }
    let _ = writeln!(
        w,
        "\nCommand lines (`{{port}}` is a free port; the wasmhost cache is warm):\n"
    );
    for server in &results.servers {
        let _ = writeln!(w, "- {}: `{}`", server.spec.label, server.spec.display());
    }
    let reuse_rows: Vec<String> = results
        .servers
        .iter()
        .filter_map(|s| Some((s, instances_per_request(s)?)))
        .map(|(s, n)| format!("{}: {n:.3}", s.spec.label))
        .collect();
    if !reuse_rows.is_empty() {
        let _ = writeln!(
            w,
            "\nInstances created per request during the load (wasmhost's `/metrics`): {}.",
            reuse_rows.join("; ")
        );
    }
    if !results.has_isolation_flag {
        let _ = writeln!(
            w,
            "\n`wasmhost run` has no `--isolation` flag: every row runs its default mode."
        );
    }
    let _ = writeln!(
        w,
        "\nAt c=1 every request wakes an idle CPU on each side. On a VM, where an idle vCPU \
         halts, that wake-up latency dominates c=1 and differs between servers (even the \
         bare hyper server can come out slower than wasmhost); c=64 keeps the CPUs busy and \
         measures the servers' own work."
    );
}

fn instantiation(w: &mut String, results: &Results) {
    let _ = writeln!(w, "\n## Instantiation from the cached native code\n");
    let _ = writeln!(
        w,
        "In-process, through `Engine::instantiate_once` (`Store::new` + instantiate from the \
         `InstancePre`, pooling allocator, the same engine configuration as `wasmhost run`). \
         \"with drop\" adds freeing the instance (the slot's reset) and the async call.\n"
    );
    let _ = writeln!(
        w,
        "| component | load from cache | n × rounds | mean µs (median round) | rounds' means µs | \
         p50 µs | p99 µs | mean with drop µs |"
    );
    let _ = writeln!(
        w,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for i in &results.instantiation {
        let _ = writeln!(
            w,
            "| {} | {} ms | {} × {} | {} | {}–{} | {} | {} | {} |",
            i.component,
            ms(i.load_from_cache),
            i.count,
            i.rounds,
            us(i.mean),
            us(i.mean_range.0),
            us(i.mean_range.1),
            us(i.p50),
            us(i.p99),
            us(i.mean_with_drop)
        );
    }
}

fn cold_start(w: &mut String, results: &Results) {
    let _ = writeln!(
        w,
        "\n## Cold start (`wasmhost run`, milliseconds, medians)\n"
    );
    let _ = writeln!(
        w,
        "\"first byte\" is from sending the request on an open connection to the response \
         head; \"start\" is from spawning the process to its printing the URL (it listens \
         after loading). \"spawn → first byte\" adds connecting and the first request. The \
         runs use `wasmhost run`'s default isolation.\n"
    );
    if let Some(d) = results.exec_floor {
        let _ = writeln!(
            w,
            "For scale: spawning `wasmhost --version` ({:.0} MB binary) until it exits takes \
             {} ms (median).\n",
            results.binary_bytes as f64 / 1e6,
            ms(d)
        );
    }
    let _ = writeln!(
        w,
        "| component | start, empty cache (compiles) | first byte, host up | 2nd request | \
         start, warm cache | first byte after restart, host up | spawn → first byte, warm cache |"
    );
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for c in &results.cold {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.component,
            ms(c.startup_cache_cold),
            ms(c.first_byte_after_cold),
            ms(c.second_byte),
            ms(c.startup_cache_warm),
            ms(c.first_byte_after_restart),
            ms(c.spawn_to_first_byte_warm)
        );
    }
}

fn memory(w: &mut String, results: &Results) {
    let _ = writeln!(w, "\n## Memory\n");
    let _ = writeln!(
        w,
        "Resident memory (`VmRSS` from `/proc/<pid>/status`) of each server process, in MiB: \
         after startup and one request, idle 1 s after the load, and the peak (`VmHWM`); \
         for wasmhost also the instances alive then (`/metrics`).\n"
    );
    let _ = writeln!(
        w,
        "| server | after start | idle after load | peak | live instances (start → idle) |"
    );
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: |");
    for server in &results.servers {
        let live = match (server.metrics_ready, server.metrics_idle) {
            (Some(a), Some(b)) => format!("{:.0} → {:.0}", a.live, b.live),
            _ => "–".into(),
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {live} |",
            server.spec.label,
            mib(server.rss_ready_kib),
            mib(server.rss_idle_kib),
            mib(server.rss_peak_kib)
        );
    }
    let _ = writeln!(w);
    for component in [crate::PROXY, crate::HELLO] {
        match warm_instance_kib(results, component) {
            Some((kib, live, cross)) => {
                let cross = cross.map_or(String::new(), |c| {
                    format!(
                        " Cross-check from each process's own growth (after start → idle \
                         after the load, reuse minus per-request, over the instances added): \
                         {c:.0} KiB."
                    )
                });
                let _ = writeln!(
                    w,
                    "- Per idle warm instance ({component}): {kib:.0} KiB — the reuse \
                     process's RSS minus the per-request one's, idle after the same load, \
                     over the {live:.0} instances it kept (a difference of two processes: \
                     expect ± a few hundred KiB of noise in the numerator).{cross}"
                );
            }
            None => {
                let _ = writeln!(
                    w,
                    "- Per idle warm instance ({component}): not measurable here — the \
                     reuse process kept no more instances than the per-request one."
                );
            }
        }
    }
    if let Some(memory) = &results.memory {
        for (name, kib) in &memory.per_instance_kib {
            let _ = writeln!(
                w,
                "- Per live instance ({name}, instantiated, never called): {kib:.1} KiB — \
                 growth of the benchmark's own RSS while holding {} instances from the engine \
                 API on a fresh engine (fresh pool slots). A lower bound: memory the process \
                 had already freed and reuses does not show.",
                memory.held_instances
            );
        }
        let _ = writeln!(
            w,
            "- Per loaded component: {:.0} KiB, of which {:.0} KiB anonymous — RSS growth after \
             loading `hello.wasm` {} times from the cache (each a separate mapping of the \
             native code, an `InstancePre` and a `describe` call; {} ms per load): a stand-in \
             for {} deployed functions ({:.0} MiB, {:.0} MiB anonymous; the rest is the mapped \
             native code, shared with the page cache).",
            memory.per_component_kib,
            memory.per_component_anon_kib,
            memory.loaded_components,
            ms(memory.mean_load_from_cache),
            memory.loaded_components,
            memory.per_component_kib * f64::from(memory.loaded_components) / 1024.0,
            memory.per_component_anon_kib * f64::from(memory.loaded_components) / 1024.0
        );
    }
}

fn targets(w: &mut String, results: &Results) {
    let _ = writeln!(w, "\n## Targets (issue 6)\n");
    let _ = writeln!(
        w,
        "Throughput targets are judged at the highest concurrency (the c=1 ratio is shown \
         too: one connection measures round-trip latency between two processes, which is \
         noisier on a small VM than throughput).\n"
    );
    let checks = checks(results);
    let _ = writeln!(w, "| target | measured | verdict |");
    let _ = writeln!(w, "| --- | --- | --- |");
    for check in &checks {
        let _ = writeln!(
            w,
            "| {} | {} | {} |",
            check.target, check.measured, check.verdict
        );
    }
    let missed: Vec<&Check> = checks
        .iter()
        .filter(|c| c.missed && !c.why.is_empty())
        .collect();
    if missed.is_empty() {
        return;
    }
    let _ = writeln!(w, "\n### What limits the missed targets\n");
    let mut explained: Vec<&str> = Vec::new();
    for check in missed {
        if explained.contains(&check.why.as_str()) {
            continue;
        }
        explained.push(&check.why);
        let _ = writeln!(w, "- **{}**: {}", check.target, check.why);
    }
}
