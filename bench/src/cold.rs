//! Cold starts: `wasmhost run` from an empty and a warm cache, what exec alone costs, and
//! a guest with init work served with and without its pre-initialisation snapshot.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::load::{self, Conn};
use crate::server::{Running, ServerSpec};

/// Cold-start timings of one component (medians over `runs`).
#[derive(Debug)]
pub struct ColdStart {
    pub component: &'static str,
    pub runs: usize,
    /// Spawn to listening, empty cache (includes compiling).
    pub startup_cache_cold: Duration,
    /// First request's first byte, host up (never called), after a cache-cold start.
    pub first_byte_after_cold: Duration,
    /// Second request's first byte, same host.
    pub second_byte: Duration,
    /// Spawn to listening, cache warm.
    pub startup_cache_warm: Duration,
    /// First request's first byte, host up, after a cache-warm restart.
    pub first_byte_after_restart: Duration,
    /// Spawn to the first byte of the first request, cache warm.
    pub spawn_to_first_byte_warm: Duration,
}

/// The median time to spawn `wasmhost --version` and see it exit.
pub fn exec_floor(wasmhost: &Path, runs: usize) -> Option<Duration> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let status = std::process::Command::new(wasmhost)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(())?;
        samples.push(started.elapsed());
    }
    Some(load::median(&mut samples))
}

/// `wasmhost run <wasm>` on a free port with its cache in `cache_dir`; the access log
/// (a line per request at `info`) is off, as in `wasmtime serve`.
pub fn run_spec(
    label: &str,
    wasmhost: &Path,
    wasm: &str,
    cache_dir: &str,
    path: &str,
    extra: &[&str],
) -> ServerSpec {
    let mut args = vec![
        "run",
        wasm,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--cache-dir",
        cache_dir,
    ];
    args.extend_from_slice(extra);
    ServerSpec::new(label, wasmhost, &args, path).env("WASMHOST_LOG", "warn")
}

/// One start of a server: spawn → listening, spawn → the first request sent, and the
/// first-byte times of requests sent one after another on one connection.
struct Start {
    announced: Duration,
    sent_at: Duration,
    heads: Vec<Duration>,
}

/// Starts `spec`, sends `requests` requests (the first must succeed) and stops it.
async fn start_and_get(spec: &ServerSpec, requests: usize) -> anyhow::Result<Start> {
    let server = Running::start(spec).await?;
    let mut conn = Conn::open(server.target.addr).await?;
    let sent_at = server.since_spawn();
    let mut heads = Vec::with_capacity(requests);
    for i in 0..requests {
        let response = conn.get(&server.target).await?;
        if i == 0 && !response.ok() {
            bail!(
                "{}: the first request answered {}",
                spec.label,
                response.status
            );
        }
        heads.push(response.head);
    }
    let start = Start {
        announced: server.announced_after,
        sent_at,
        heads,
    };
    server.stop().await;
    Ok(start)
}

/// Starts `wasmhost run` on an empty cache, then again on the warm cache, `runs` times.
pub async fn cold_start(
    name: &'static str,
    wasmhost: &Path,
    wasm: &Path,
    runs: usize,
) -> anyhow::Result<ColdStart> {
    let mut samples: [Vec<Duration>; 6] = Default::default();
    let wasm = wasm.to_string_lossy().into_owned();
    let path = if name.contains("hello") {
        "/?name=cold"
    } else {
        "/"
    };
    for _ in 0..runs.max(1) {
        let cache = tempfile::tempdir()?;
        let cache_dir = cache.path().to_string_lossy().into_owned();
        let spec = run_spec(name, wasmhost, &wasm, &cache_dir, path, &[]);
        // Empty cache: the start compiles.
        let cold = start_and_get(&spec, 2).await?;
        samples[0].push(cold.announced);
        samples[1].push(cold.heads[0]);
        samples[2].push(cold.heads[1]);
        // Restart on the warm cache.
        let warm = start_and_get(&spec, 1).await?;
        samples[3].push(warm.announced);
        samples[4].push(warm.heads[0]);
        samples[5].push(warm.sent_at + warm.heads[0]);
    }
    let [a, b, c, d, e, f] = samples.map(|mut s| load::median(&mut s));
    Ok(ColdStart {
        component: name,
        runs: runs.max(1),
        startup_cache_cold: a,
        first_byte_after_cold: b,
        second_byte: c,
        startup_cache_warm: d,
        first_byte_after_restart: e,
        spawn_to_first_byte_warm: f,
    })
}

/// First bytes of the `preinit` guest (~50 ms of `#[wasmhost::init]` work), medians.
#[derive(Debug)]
pub struct PreInitStart {
    pub runs: usize,
    /// Spawn to listening on an empty cache with snapshots: compiling, running init once
    /// and compiling the snapshot.
    pub startup_with_snapshot: Duration,
    /// First byte of the never-called endpoint, host up, instances from the snapshot.
    pub first_byte_snapshot: Duration,
    /// The same after a restart on the warm cache (the snapshot comes from the cache).
    pub first_byte_snapshot_restart: Duration,
    /// Spawn to the first byte after that restart.
    pub spawn_to_first_byte_snapshot: Duration,
    /// First byte, host up, with `--no-snapshot`: the new instance runs init first.
    pub first_byte_no_snapshot: Duration,
    /// Second request on that host (the warm instance already ran init).
    pub second_byte_no_snapshot: Duration,
}

/// Serves `wasm` (a guest with init work) with and without its snapshot, `runs` times.
pub async fn pre_init(wasmhost: &Path, wasm: &Path, runs: usize) -> anyhow::Result<PreInitStart> {
    if !wasm.exists() {
        bail!("missing: run bench/run.sh (it builds the examples)");
    }
    let mut samples: [Vec<Duration>; 6] = Default::default();
    let wasm = wasm.to_string_lossy().into_owned();
    for _ in 0..runs.max(1) {
        let cache = tempfile::tempdir()?;
        let cache_dir = cache.path().to_string_lossy().into_owned();
        let spec = |extra| run_spec("preinit", wasmhost, &wasm, &cache_dir, "/?n=97", extra);
        let made = start_and_get(&spec(&[]), 1).await?;
        samples[0].push(made.announced);
        samples[1].push(made.heads[0]);
        let cached = start_and_get(&spec(&[]), 1).await?;
        samples[2].push(cached.heads[0]);
        samples[3].push(cached.sent_at + cached.heads[0]);
        let unsnapshotted = start_and_get(&spec(&["--no-snapshot"]), 2).await?;
        samples[4].push(unsnapshotted.heads[0]);
        samples[5].push(unsnapshotted.heads[1]);
    }
    let [a, b, c, d, e, f] = samples.map(|mut s| load::median(&mut s));
    Ok(PreInitStart {
        runs: runs.max(1),
        startup_with_snapshot: a,
        first_byte_snapshot: b,
        first_byte_snapshot_restart: c,
        spawn_to_first_byte_snapshot: d,
        first_byte_no_snapshot: e,
        second_byte_no_snapshot: f,
    })
}
