//! `wasmhost-bench`: runs wasmhost, `wasmtime serve` and a bare hyper server side by side
//! on this machine and writes `bench/RESULTS.md`. See `bench/run.sh` and the README's
//! "Benchmarks" section.
//!
//! Every server is its own process; the load generator is this process (hyper client,
//! HTTP/1.1 keep-alive, `c` connections each sending one request after another).

mod cold;
mod load;
mod report;
mod server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use wasmhost::engine::{CacheOutcome, Engine, EngineConfig};

use crate::cold::{ColdStart, PreInitStart};
use crate::load::LoadResult;
use crate::server::{InstanceMetrics, Running, ServerSpec, own_rss_kib, own_status_kib};

/// The allocator `wasmhost` runs with, so that instantiation here measures what the host
/// does and the bare hyper server differs from wasmhost in its design, not its allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where the sections of `RESULTS.md` written by the scripts run on their own start
/// (`bench/density.py`, `bench/peers.py`, `bench/python.py`); a run keeps them.
const SECTION_MARK: &str = "<!-- ";

#[derive(Debug, Parser)]
#[command(about = "Benchmarks wasmhost against `wasmtime serve` and a bare hyper server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    options: Options,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Serve the bare hyper hello server (the ceiling; started by the benchmark itself).
    #[command(hide = true)]
    HyperServer {
        #[arg(long)]
        port: u16,
    },
    /// Instantiate one component from the cache in a loop and print the mean (for
    /// profiling the instantiation path with `perf record`).
    #[command(hide = true)]
    Instantiate {
        /// The component (`.wasm`).
        component: PathBuf,
        /// Instantiations.
        #[arg(long, default_value_t = 200_000)]
        count: u32,
    },
    /// Load one server already running and print one JSON line of what it measured
    /// (used by `bench/python.py` for the Python rows).
    Load {
        /// The server's address, e.g. `127.0.0.1:8000`.
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// Path and query of every request.
        #[arg(long, default_value = "/")]
        path: String,
        /// Connections, each sending requests one after another.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Load before measuring.
        #[arg(long, default_value = "1s", value_parser = wasmhost::cli::parse_duration)]
        warmup: Duration,
        /// Measured time.
        #[arg(long, default_value = "5s", value_parser = wasmhost::cli::parse_duration)]
        duration: Duration,
    },
}

#[derive(Debug, clap::Args)]
struct Options {
    /// Measured time per server and concurrency.
    #[arg(long, default_value = "5s", value_parser = wasmhost::cli::parse_duration)]
    duration: Duration,
    /// Load before measuring, per server and concurrency.
    #[arg(long, default_value = "1s", value_parser = wasmhost::cli::parse_duration)]
    warmup: Duration,
    /// Connections, each sending requests one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    concurrency: Vec<usize>,
    /// The wasmhost binary [default: target/release/wasmhost].
    #[arg(long)]
    wasmhost: Option<PathBuf>,
    /// The wasmtime CLI (the peer); skipped with a note when it does not run.
    #[arg(long, default_value = "wasmtime")]
    wasmtime: PathBuf,
    /// Where the example components are [default: examples/target/wasm32-wasip2/release].
    #[arg(long)]
    examples: Option<PathBuf>,
    /// Rounds through all servers; each row reports the median round and the spread.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Instantiations to average (per round).
    #[arg(long, default_value_t = 10_000)]
    instantiations: u32,
    /// Process starts per cold-start measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    cold_runs: usize,
    /// Only the server rows whose label contains one of these (comma-separated); the
    /// other sections still run. For quick comparisons: pair it with --out.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The results file [default: bench/RESULTS.md].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The component names the rows and tables use.
pub const PROXY: &str = "wasi:http proxy";
pub const HELLO: &str = "typed endpoint (hello)";
pub const SERVICE: &str = "WASIp3 wasi:http service";

/// The workspace root (this crate lives in `bench/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// Everything the benchmark measured, for the report.
#[derive(Debug, Default)]
pub struct Results {
    pub machine: report::Machine,
    pub options: String,
    pub servers: Vec<ServerResult>,
    pub instantiation: Vec<Instantiation>,
    pub cold: Vec<ColdStart>,
    /// First bytes of a guest with init work, with and without its snapshot.
    pub pre_init: Option<PreInitStart>,
    /// `wasmhost --version`, spawn to exit (median): what exec alone costs.
    pub exec_floor: Option<Duration>,
    /// Size of the wasmhost binary in bytes.
    pub binary_bytes: u64,
    pub memory: Option<Memory>,
    /// Whether `wasmhost run` has `--isolation` (reuse vs per-request modes).
    pub has_isolation_flag: bool,
    /// Whether `wasmhost run` has `--max-inputs` (it serves WASIp3 components).
    pub has_max_inputs_flag: bool,
    /// What could not be measured, and why.
    pub skipped: Vec<String>,
}

/// One server's throughput and memory.
#[derive(Debug)]
pub struct ServerResult {
    pub spec: ServerSpec,
    pub role: Role,
    /// Which component it serves (pairs reuse and per-request rows).
    pub component: &'static str,
    /// Per concurrency: the round with the median requests/s.
    pub loads: Vec<LoadResult>,
    /// Every round's results, in order.
    pub rounds: Vec<Vec<LoadResult>>,
    /// Resident memory after startup and one request, after the load (idle 1 s) and at peak.
    pub rss_ready_kib: Option<u64>,
    pub rss_idle_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    /// wasmhost's instance counters after startup and one request, and after the load.
    pub metrics_ready: Option<InstanceMetrics>,
    pub metrics_idle: Option<InstanceMetrics>,
}

impl ServerResult {
    /// Adds a later round (memory and metrics are the latest round's).
    fn add_round(&mut self, later: ServerResult) {
        self.rounds.extend(later.rounds);
        self.rss_ready_kib = later.rss_ready_kib;
        self.rss_idle_kib = later.rss_idle_kib;
        self.rss_peak_kib = later.rss_peak_kib.max(self.rss_peak_kib);
        self.metrics_ready = later.metrics_ready;
        self.metrics_idle = later.metrics_idle;
    }

    /// Picks, per concurrency, the round with the median requests/s.
    fn summarise(&mut self) {
        self.loads = (0..self.rounds[0].len())
            .map(|i| {
                let mut runs: Vec<&LoadResult> = self.rounds.iter().map(|r| &r[i]).collect();
                runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
                runs[runs.len() / 2].clone()
            })
            .collect();
    }

    /// Requests/s at concurrency `c` in each round.
    pub fn round_rps(&self, c: usize) -> Vec<f64> {
        self.rounds
            .iter()
            .filter_map(|r| r.iter().find(|l| l.concurrency == c).map(|l| l.rps))
            .collect()
    }
}

/// What a server row stands for in the target comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// wasmhost with `--isolation reuse` on the peer's component (which, a plain wasi:http
    /// component, gets a fresh instance per request without it).
    Reuse,
    /// wasmhost with `--isolation per-request` on the peer's component.
    PerRequest,
    /// wasmhost on another component (the typed endpoint), with reuse.
    OtherReuse,
    /// wasmhost on another component, per request (or without `--isolation`).
    OtherPerRequest,
    /// wasmhost on a WASIp3 service: one instance takes several requests at once.
    Service,
    /// `wasmtime serve` with its defaults: a fresh instance per request.
    Peer,
    /// `wasmtime serve` told to reuse instances (`--max-instance-reuse-count`).
    PeerReuse,
    Ceiling,
}

impl Role {
    pub fn is_wasmhost(self) -> bool {
        !matches!(self, Role::Peer | Role::PeerReuse | Role::Ceiling)
    }

    pub fn is_peer(self) -> bool {
        matches!(self, Role::Peer | Role::PeerReuse)
    }
}

/// Instantiation from the cached native code, via `Engine::instantiate_once`.
#[derive(Debug)]
pub struct Instantiation {
    pub component: &'static str,
    pub load_from_cache: Duration,
    pub count: u32,
    pub rounds: usize,
    /// Mean of the hook's own timing (Store::new + instantiate): the median round's, and
    /// the lowest and highest round's.
    pub mean: Duration,
    pub mean_range: (Duration, Duration),
    pub p50: Duration,
    pub p99: Duration,
    /// Mean per iteration with dropping the instance and the async call around it.
    pub mean_with_drop: Duration,
}

/// Memory measured in this process with the engine API.
#[derive(Debug)]
pub struct Memory {
    pub held_instances: u32,
    /// RSS growth per live, never-called instance (KiB), on a fresh engine.
    pub per_instance_kib: Vec<(&'static str, f64)>,
    pub loaded_components: u32,
    /// RSS growth per loaded (deployed) component (KiB), and its anonymous part (the
    /// rest maps the cached native code from the page cache).
    pub per_component_kib: f64,
    pub per_component_anon_kib: f64,
    pub mean_load_from_cache: Duration,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Some(Command::HyperServer { port }) => runtime.block_on(server::hyper_hello(port)),
        Some(Command::Load {
            addr,
            path,
            concurrency,
            warmup,
            duration,
        }) => {
            let target = load::Target { addr, path };
            let r = runtime.block_on(load::run(&target, concurrency, warmup, duration))?;
            println!(
                "{{\"concurrency\": {}, \"rps\": {:.1}, \"p50_us\": {:.1}, \"p99_us\": {:.1}, \"ok\": {}, \"errors\": {}}}",
                r.concurrency,
                r.rps,
                r.p50.as_secs_f64() * 1e6,
                r.p99.as_secs_f64() * 1e6,
                r.ok,
                r.errors
            );
            Ok(())
        }
        Some(Command::Instantiate { component, count }) => {
            runtime.block_on(instantiate_loop(&component, count))
        }
        None => runtime.block_on(bench(cli.options)),
    }
}

/// Measures every server, the engine API and the cold starts, and writes the report.
async fn bench(opts: Options) -> anyhow::Result<()> {
    let root = root();
    let wasmhost = opts
        .wasmhost
        .clone()
        .unwrap_or_else(|| root.join("target/release/wasmhost"));
    let examples = opts
        .examples
        .clone()
        .unwrap_or_else(|| root.join("examples/target/wasm32-wasip2/release"));
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| root.join("bench/RESULTS.md"));
    let proxy = examples.join("wasi_http_proxy.wasm");
    let hello = examples.join("hello.wasm");
    for needed in [&wasmhost, &proxy, &hello] {
        if !needed.exists() {
            bail!(
                "{} is missing: run bench/run.sh (it builds the host and the examples)",
                needed.display()
            );
        }
    }
    let mut results = Results {
        machine: report::Machine::collect(&root, &opts.wasmtime),
        options: options_line(&opts),
        ..Results::default()
    };
    let cache = tempfile::tempdir()?;
    let cache_dir = cache.path().to_string_lossy().into_owned();
    probe_flags(&wasmhost, &mut results)?;
    let specs = selected_specs(&opts, &wasmhost, &examples, &cache_dir, &mut results);
    // Rounds go through every server in turn, so drift on the machine hits all rows alike.
    let rounds = opts.rounds.max(1);
    results.servers = measure_rounds(&specs, &opts, rounds, &mut results.skipped).await;
    for server in &mut results.servers {
        server.summarise();
    }

    eprintln!("== instantiation and memory (engine API, in this process)");
    let (instantiation, memory) =
        engine_measurements(&proxy, &hello, opts.instantiations, rounds).await?;
    results.instantiation = instantiation;
    results.memory = Some(memory);

    measure_starts(&wasmhost, &examples, (&proxy, &hello), &opts, &mut results).await?;

    results.machine.busy_after = report::cpu_busy();
    write_report(&results, &out)
}

/// How the run was made, for the report's header.
fn options_line(opts: &Options) -> String {
    format!(
        "{} rounds through all servers, each {} s measured after {} s warmup per server \
         and concurrency (a row shows the median round); {} × {} instantiations; {} process \
         starts per cold-start figure",
        opts.rounds.max(1),
        opts.duration.as_secs_f64(),
        opts.warmup.as_secs_f64(),
        opts.rounds.max(1),
        opts.instantiations,
        opts.cold_runs
    )
}

/// Asks the wasmhost binary which flags it has (older builds lack some).
fn probe_flags(wasmhost: &Path, results: &mut Results) -> anyhow::Result<()> {
    let help = std::process::Command::new(wasmhost)
        .args(["run", "--help"])
        .output()
        .context("cannot run wasmhost")?;
    let help = String::from_utf8_lossy(&help.stdout);
    results.has_isolation_flag = help.contains("--isolation");
    results.has_max_inputs_flag = help.contains("--max-inputs");
    Ok(())
}

/// The rows to measure: those `--only` selects, less peers when wasmtime is missing
/// (noted as skipped).
fn selected_specs(
    opts: &Options,
    wasmhost: &Path,
    examples: &Path,
    cache_dir: &str,
    results: &mut Results,
) -> Vec<(ServerSpec, Role, &'static str)> {
    let wasmtime_version = results.machine.wasmtime.clone();
    let mut specs = Vec::new();
    for (spec, role, component) in server_specs(opts, wasmhost, examples, cache_dir, results) {
        if !opts.only.is_empty() && !opts.only.iter().any(|o| spec.label.contains(o.as_str())) {
            continue;
        }
        if role.is_peer() && wasmtime_version.is_none() {
            results.skipped.push(format!(
                "`{}`: wasmtime is not installed (`bench/run.sh` takes the prebuilt one from PyPI)",
                spec.display()
            ));
            continue;
        }
        specs.push((spec, role, component));
    }
    specs
}

/// Measures each server once a round; one that fails is noted in `skipped` and dropped.
async fn measure_rounds(
    specs: &[(ServerSpec, Role, &'static str)],
    opts: &Options,
    rounds: usize,
    skipped: &mut Vec<String>,
) -> Vec<ServerResult> {
    let mut measured: Vec<Option<ServerResult>> = specs.iter().map(|_| None).collect();
    let mut failed = vec![false; specs.len()];
    for round in 0..rounds {
        for (i, (spec, role, component)) in specs.iter().enumerate() {
            if failed[i] {
                continue;
            }
            eprintln!("== {} (round {}/{rounds})", spec.label, round + 1);
            match measure_server(spec, *role, component, opts, round == 0).await {
                Ok(r) => match &mut measured[i] {
                    Some(all) => all.add_round(r),
                    slot @ None => *slot = Some(r),
                },
                Err(e) => {
                    failed[i] = true;
                    measured[i] = None;
                    let note = format!("`{}` failed: {e:#}", spec.display());
                    skipped.push(note);
                }
            }
        }
    }
    measured.into_iter().flatten().collect()
}

/// Measures process starts: the exec floor, cold starts, and pre-initialisation.
async fn measure_starts(
    wasmhost: &Path,
    examples: &Path,
    (proxy, hello): (&Path, &Path),
    opts: &Options,
    results: &mut Results,
) -> anyhow::Result<()> {
    eprintln!("== cold start");
    results.exec_floor = cold::exec_floor(wasmhost, 20);
    results.binary_bytes = std::fs::metadata(wasmhost).map_or(0, |m| m.len());
    for (name, file) in [(PROXY, proxy), (HELLO, hello)] {
        let cold = cold::cold_start(name, wasmhost, file, opts.cold_runs).await?;
        results.cold.push(cold);
    }
    eprintln!("== pre-initialisation");
    let preinit = examples.join("preinit.wasm");
    match cold::pre_init(wasmhost, &preinit, opts.cold_runs).await {
        Ok(p) => results.pre_init = Some(p),
        Err(e) => results
            .skipped
            .push(format!("pre-initialisation ({}): {e:#}", preinit.display())),
    }
    Ok(())
}

/// Prints the report and writes it to `out`, keeping the rows after [`SECTION_MARK`].
fn write_report(results: &Results, out: &Path) -> anyhow::Result<()> {
    let mut markdown = report::render(results);
    println!("{markdown}");
    // The rows of the scripts run on their own come after the first marker; keep them.
    if let Ok(old) = std::fs::read_to_string(out)
        && let Some(at) = old.find(SECTION_MARK)
    {
        markdown.push('\n');
        markdown.push_str(&old[at..]);
    }
    std::fs::write(out, &markdown).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The rows: one command line each. Extend here when wasmhost grows modes.
fn server_specs(
    opts: &Options,
    wasmhost: &Path,
    examples: &Path,
    cache_dir: &str,
    results: &Results,
) -> Vec<(ServerSpec, Role, &'static str)> {
    let file = |name: &str| examples.join(name).to_string_lossy().into_owned();
    let (proxy, hello) = (file("wasi_http_proxy.wasm"), file("hello.wasm"));
    let run = |label: &str, wasm: &str, extra: &[&str], path: &str| {
        cold::run_spec(label, wasmhost, wasm, cache_dir, path, extra)
    };
    let mut specs = Vec::new();
    for (name, wasm, path, reuse_role, per_request_role) in [
        (PROXY, &proxy, "/", Role::Reuse, Role::PerRequest),
        (
            HELLO,
            &hello,
            "/?name=bench",
            Role::OtherReuse,
            Role::OtherPerRequest,
        ),
    ] {
        if results.has_isolation_flag {
            let label = format!("wasmhost · {name} · reuse");
            let args = ["--isolation", "reuse"];
            specs.push((run(&label, wasm, &args, path), reuse_role, name));
            let label = format!("wasmhost · {name} · per-request");
            let args = ["--isolation", "per-request"];
            specs.push((run(&label, wasm, &args, path), per_request_role, name));
        } else {
            let label = format!("wasmhost · {name}");
            specs.push((run(&label, wasm, &[], path), per_request_role, name));
        }
    }
    // Hosts from before WASIp3 support refuse the component: no row there.
    if results.has_max_inputs_flag {
        let service = file("wasi_http_p3.wasm");
        let label = format!("wasmhost · {SERVICE}");
        specs.push((run(&label, &service, &[], "/"), Role::Service, SERVICE));
    }
    let wasmtime_args = [
        "serve",
        "-Scli",
        "--addr",
        "127.0.0.1:{port}",
        proxy.as_str(),
    ];
    let label = format!("wasmtime serve · {PROXY}");
    specs.push((
        ServerSpec::new(&label, &opts.wasmtime, &wasmtime_args, "/"),
        Role::Peer,
        PROXY,
    ));
    // The peer can reuse WASIp2 instances too when asked; its default is a fresh one each.
    let reuse_args = [
        "serve",
        "-Scli",
        "--max-instance-reuse-count",
        "1000000",
        "--addr",
        "127.0.0.1:{port}",
        proxy.as_str(),
    ];
    let label = format!("wasmtime serve · {PROXY} · reuse");
    specs.push((
        ServerSpec::new(&label, &opts.wasmtime, &reuse_args, "/"),
        Role::PeerReuse,
        PROXY,
    ));
    let me = std::env::current_exe().unwrap_or_else(|_| "wasmhost-bench".into());
    let args = ["hyper-server", "--port", "{port}"];
    specs.push((
        ServerSpec::new("bare hyper hello", me, &args, "/"),
        Role::Ceiling,
        "hyper",
    ));
    specs
}

async fn measure_server(
    spec: &ServerSpec,
    role: Role,
    component: &'static str,
    opts: &Options,
    first_round: bool,
) -> anyhow::Result<ServerResult> {
    let wasmhost = role.is_wasmhost();
    if wasmhost && first_round {
        // A first start fills the native-code cache: Cranelift's memory would otherwise
        // count in the first row's RSS.
        let first = Running::start(spec).await?;
        first.ready().await?;
        first.stop().await;
    }
    let server = Running::start(spec).await?;
    server.ready().await?;
    let metrics_ready = match wasmhost {
        true => server.wasmhost_metrics().await,
        false => None,
    };
    let rss_ready_kib = server.rss_kib();
    let mut loads = Vec::new();
    for &c in &opts.concurrency {
        let result = load::run(&server.target, c, opts.warmup, opts.duration).await?;
        eprintln!(
            "   c={c:<3} {:>9.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}",
            result.rps,
            micros(result.p50),
            micros(result.p99),
            result.errors
        );
        loads.push(result);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle_kib = server.rss_kib();
    let rss_peak_kib = server.peak_rss_kib();
    let metrics_idle = match wasmhost {
        true => server.wasmhost_metrics().await,
        false => None,
    };
    server.stop().await;
    Ok(ServerResult {
        spec: spec.clone(),
        role,
        component,
        rounds: vec![loads.clone()],
        loads,
        rss_ready_kib,
        rss_idle_kib,
        rss_peak_kib,
        metrics_ready,
        metrics_idle,
    })
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `count` instantiations of `file` from the cache, each dropped at once.
async fn instantiate_loop(file: &Path, count: u32) -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let engine = Engine::new(EngineConfig::new(cache.path().to_path_buf()))?;
    engine.load_file(file).await?;
    let component = engine.load_file(file).await?;
    let mut total = Duration::ZERO;
    let started = Instant::now();
    for _ in 0..count {
        total += engine.instantiate_once(&component).await?.0;
    }
    let n = count.max(1);
    println!(
        "{} instantiations: mean {:.2} µs, with drop {:.2} µs",
        count,
        micros(total / n),
        micros(started.elapsed() / n)
    );
    Ok(())
}

/// Instantiation times and per-instance / per-component memory, in this process.
async fn engine_measurements(
    proxy: &Path,
    hello: &Path,
    count: u32,
    rounds: usize,
) -> anyhow::Result<(Vec<Instantiation>, Memory)> {
    let cache = tempfile::tempdir()?;
    let new_engine = || {
        let mut config = EngineConfig::new(cache.path().to_path_buf());
        config.max_instances = 500;
        Engine::new(config)
    };
    let mut instantiation = Vec::new();
    let mut per_instance_kib = Vec::new();
    // Well under the pool's slots (EngineConfig::max_instances).
    let held_instances = 400;
    for (name, file) in [(PROXY, proxy), (HELLO, hello)] {
        // A fresh engine per component: its pool's slots have never been used.
        let engine = new_engine()?;
        engine.load_file(file).await?; // compiles and fills the cache
        let component = engine.load_file(file).await?;
        if component.cache != CacheOutcome::Hit {
            bail!("{} was not served from the cache", file.display());
        }
        let before = own_rss_kib().unwrap_or(0);
        let mut live = Vec::with_capacity(held_instances as usize);
        for _ in 0..held_instances {
            live.push(engine.instantiate_once(&component).await?.1);
        }
        let after = own_rss_kib().unwrap_or(0);
        drop(live);
        let kib = after.saturating_sub(before) as f64 / f64::from(held_instances);
        per_instance_kib.push((name, kib));

        for _ in 0..100 {
            engine.instantiate_once(&component).await?;
        }
        let mut samples = Vec::with_capacity(count as usize * rounds);
        let mut means = Vec::with_capacity(rounds);
        let mut with_drop = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let mut total = Duration::ZERO;
            let started = Instant::now();
            for _ in 0..count {
                let (took, instance) = engine.instantiate_once(&component).await?;
                drop(instance);
                total += took;
                samples.push(took.as_nanos() as u64);
            }
            with_drop.push(started.elapsed() / count.max(1));
            means.push(total / count.max(1));
        }
        samples.sort_unstable();
        let (low, high) = (
            means.iter().min().copied().unwrap_or_default(),
            means.iter().max().copied().unwrap_or_default(),
        );
        instantiation.push(Instantiation {
            component: name,
            load_from_cache: component.load_time,
            count,
            rounds,
            mean: load::median(&mut means),
            mean_range: (low, high),
            p50: load::percentile(&samples, 50.0),
            p99: load::percentile(&samples, 99.0),
            mean_with_drop: load::median(&mut with_drop),
        });
    }

    let engine = new_engine()?;
    engine.load_file(hello).await?;
    let loaded_components = 1000;
    let rss = || own_rss_kib().unwrap_or(0);
    let anon = || own_status_kib("RssAnon:").unwrap_or(0);
    let (before, before_anon) = (rss(), anon());
    let started = Instant::now();
    let mut loaded = Vec::with_capacity(loaded_components as usize);
    for _ in 0..loaded_components {
        loaded.push(engine.load_file(hello).await?);
    }
    let mean_load_from_cache = started.elapsed() / loaded_components;
    let (after, after_anon) = (rss(), anon());
    drop(loaded);
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / f64::from(loaded_components);
    let memory = Memory {
        held_instances,
        per_instance_kib,
        loaded_components,
        per_component_kib: per(after, before),
        per_component_anon_kib: per(after_anon, before_anon),
        mean_load_from_cache,
    };
    Ok((instantiation, memory))
}
