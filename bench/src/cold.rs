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

/// Starts `wasmhost run` on an empty cache, then again on the warm cache, `runs` times.
pub async fn cold_start(
    name: &'static str,
    wasmhost: &Path,
    wasm: &Path,
    runs: usize,
) -> anyhow::Result<ColdStart> {
    let mut samples: [Vec<Duration>; 6] = Default::default();
    for _ in 0..runs.max(1) {
        let cache = tempfile::tempdir()?;
        let cache_dir = cache.path().to_string_lossy().into_owned();
        let wasm = wasm.to_string_lossy().into_owned();
        let path = if name.contains("hello") {
            "/?name=cold"
        } else {
            "/"
        };
        let args = [
            "run",
            wasm.as_str(),
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--cache-dir",
            cache_dir.as_str(),
        ];
        let spec = ServerSpec::new(name, wasmhost, &args, path).env("WASMHOST_LOG", "warn");

        // Empty cache: the start compiles.
        let server = Running::start(&spec).await?;
        let mut conn = Conn::open(server.target.addr).await?;
        let first = conn.get(&server.target).await?;
        let second = conn.get(&server.target).await?;
        if !first.ok() {
            bail!("{name}: the first request answered {}", first.status);
        }
        samples[0].push(server.announced_after);
        samples[1].push(first.head);
        samples[2].push(second.head);
        server.stop().await;

        // Restart on the warm cache.
        let server = Running::start(&spec).await?;
        let mut conn = Conn::open(server.target.addr).await?;
        let sent_at = server.since_spawn();
        let first = conn.get(&server.target).await?;
        if !first.ok() {
            bail!(
                "{name}: the first request after a restart answered {}",
                first.status
            );
        }
        samples[3].push(server.announced_after);
        samples[4].push(first.head);
        samples[5].push(sent_at + first.head);
        server.stop().await;
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
        let spec = |extra: &[&str]| {
            let mut args = vec![
                "run",
                wasm.as_str(),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--cache-dir",
                cache_dir.as_str(),
            ];
            args.extend_from_slice(extra);
            ServerSpec::new("preinit", wasmhost, &args, "/?n=97").env("WASMHOST_LOG", "warn")
        };
        let snapshot = spec(&[]);
        let server = Running::start(&snapshot).await?;
        let mut conn = Conn::open(server.target.addr).await?;
        let first = conn.get(&server.target).await?;
        if !first.ok() {
            bail!("the first request answered {}", first.status);
        }
        samples[0].push(server.announced_after);
        samples[1].push(first.head);
        server.stop().await;

        let server = Running::start(&snapshot).await?;
        let mut conn = Conn::open(server.target.addr).await?;
        let sent_at = server.since_spawn();
        let first = conn.get(&server.target).await?;
        samples[2].push(first.head);
        samples[3].push(sent_at + first.head);
        server.stop().await;

        let server = Running::start(&spec(&["--no-snapshot"])).await?;
        let mut conn = Conn::open(server.target.addr).await?;
        let first = conn.get(&server.target).await?;
        let second = conn.get(&server.target).await?;
        if !first.ok() {
            bail!("without a snapshot the first request answered {}", first.status);
        }
        samples[4].push(first.head);
        samples[5].push(second.head);
        server.stop().await;
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
