//! The `wasmhost` command line: `run`, `build`, `gpu`.

mod build;
mod calls;
mod client;
mod gpu;
mod history;
mod logs;
mod new;
mod remote;
mod resources;
mod run;
mod serve;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub use build::{SourceKind, build_guest, tools_dir};

/// Runs WebAssembly components in a sandbox and serves them over HTTP.
#[derive(Debug, Parser)]
#[command(name = "wasmhost", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    globals: Globals,
}

/// The options every command takes.
#[derive(Debug, clap::Args)]
struct Globals {
    /// How the host writes its own log lines (to stderr): `text` for people, `json` (one
    /// object per line) for log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "WASMHOST_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

/// `wasmhost run` alone: the command a restart runs, parsed without building the other
/// commands' parsers (most of the quarter millisecond clap takes).
#[derive(Debug, Parser)]
#[command(name = "wasmhost")]
struct RunOnly {
    #[command(subcommand)]
    command: RunCommand,
    #[command(flatten)]
    globals: Globals,
}

#[derive(Debug, Subcommand)]
enum RunCommand {
    Run(run::RunArgs),
}

impl Cli {
    /// Parses the command line. A `run` that parses cleanly takes the short way; help,
    /// `--version` and every error go through the full parser, so they read the same.
    fn from_args() -> Self {
        if std::env::args_os().nth(1).is_some_and(|a| a == "run")
            && let Ok(RunOnly {
                command: RunCommand::Run(args),
                globals,
            }) = RunOnly::try_parse()
        {
            return Self {
                command: Command::Run(args),
                globals,
            };
        }
        Self::parse()
    }
}

/// Values of `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a component (or a guest crate, built first) on a local port.
    Run(run::RunArgs),
    /// Start a new app from a template (Rust or Python) in a new directory.
    New(new::NewArgs),
    /// Build a guest crate for wasm32-wasip2 and print the path of its component.
    Build {
        /// A guest crate's directory, a Python app (`app.py`) or a JavaScript app (`app.js`).
        dir: PathBuf,
    },
    /// Run the long-lived host: deployed apps, Modal-style URLs, the /v1 control API.
    Server(server::ServerArgs),
    /// Serve an ephemeral app with `-dev` URLs, reloaded when its source changes.
    Serve(serve::ServeArgs),
    /// Upload a component (or a crate, built first) to a server and deploy it.
    Deploy(remote::DeployArgs),
    /// Manage apps on a server.
    #[command(subcommand)]
    App(remote::AppCommand),
    /// Inspect functions on a server.
    #[command(subcommand)]
    Function(remote::FunctionCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(remote::TokenCommand),
    /// Call a function and print its result (Modal's `.remote`).
    Call(calls::CallArgs),
    /// Spawn a call and print its id (Modal's `.spawn`).
    Spawn(calls::CallArgs),
    /// Print an app's log lines: what its calls and web requests printed, and what the
    /// host did (attempts, retries, timeouts, traps).
    Logs(logs::LogsArgs),
    /// Print a spawned call's result, or its status while it runs.
    CallResult(calls::ResultArgs),
    /// Run a function over the inputs of a JSON Lines file (Modal's `.map`).
    Map(calls::MapArgs),
    /// Manage secrets (given to functions as environment variables).
    #[command(subcommand)]
    Secret(resources::SecretCommand),
    /// Manage volumes (directories functions mount).
    #[command(subcommand)]
    Volume(resources::VolumeCommand),
    /// Show the GPU adapter guests would get, or why there is none.
    Gpu(GpuArgs),
    /// Python build tools: native extensions built for WASI.
    #[command(subcommand)]
    Python(build::PythonCommand),
}

/// How instances are shared between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// Warm instances are reused (state may persist between requests), also for
    /// `wasi:http` components that did not declare reuse.
    Reuse,
    /// A fresh instance per request.
    PerRequest,
}

/// Engine settings shared by the commands that run guests.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Time limit of a call when the endpoint sets none (e.g. 30s, 5m).
    #[arg(long, default_value = "300s", value_parser = parse_duration, env = "WASMHOST_TIMEOUT")]
    pub timeout: Duration,
    /// Memory cap of an instance in MiB when the endpoint sets none.
    #[arg(long, default_value_t = 256, env = "WASMHOST_MEMORY_LIMIT")]
    pub memory_limit: u32,
    /// The port a web-server component (a wasi:cli command) listens on inside its sandbox.
    #[arg(long, default_value_t = 8000, env = "WASMHOST_WEB_PORT")]
    pub web_port: u16,
    /// How long a guest may take to start: a web-server component to listen, a guest's
    /// `#[wasmhost::init]` work to finish (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub startup_timeout: Duration,
    /// Run `#[wasmhost::init]` work in every new instance instead of baking it into a
    /// snapshot at load (for comparison; snapshots are what makes such guests start fast).
    #[arg(long)]
    pub no_snapshot: bool,
    /// Where compiled native code is cached [default: $XDG_CACHE_HOME/wasmhost or ~/.cache/wasmhost].
    #[arg(long, env = "WASMHOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// `reuse`: warm instances serve request after request, like containers;
    /// `per-request`: a fresh instance for every request. Unset, wasmhost SDK guests and
    /// components that declare reuse (a `wasmhost:reuse` custom section) keep warm
    /// instances and other `wasi:http` components get a fresh one per request.
    #[arg(long, value_enum, env = "WASMHOST_ISOLATION")]
    pub isolation: Option<Isolation>,
    /// Idle warm instances are retired after this long without a request (scale to zero).
    #[arg(long, default_value = "60s", value_parser = parse_duration, env = "WASMHOST_SCALEDOWN_WINDOW")]
    pub scaledown_window: Duration,
    /// Warm instances kept per endpoint even without traffic (Modal's min_containers).
    #[arg(long, default_value_t = 0, env = "WASMHOST_MIN_CONTAINERS")]
    pub min_containers: usize,
    /// Extra idle instances kept ready per endpoint while it takes traffic (Modal's
    /// buffer_containers).
    #[arg(long, default_value_t = 0, env = "WASMHOST_BUFFER_CONTAINERS")]
    pub buffer_containers: usize,
    /// Calls of one endpoint running at once (Modal's max_containers × max_inputs); more wait.
    #[arg(long, default_value_t = 64, env = "WASMHOST_MAX_CONCURRENCY")]
    pub max_concurrency: usize,
    /// Requests one instance takes at once where the component can take several
    /// (WASIp3 `wasi:http` services; Modal's `@concurrent(max_inputs=…)`), unless the
    /// app says [default: 16].
    #[arg(long, env = "WASMHOST_MAX_INPUTS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_inputs: Option<u32>,
    /// Requests that may wait for a busy endpoint; past it they get 503 with Retry-After.
    #[arg(long, default_value_t = 1024, env = "WASMHOST_QUEUE_DEPTH")]
    pub queue_depth: usize,
    /// Instances alive at once across the host, warm idle ones included; past it, requests
    /// get 503 with Retry-After. Each costs a guard page set up when the host starts.
    #[arg(long, default_value_t = 256, env = "WASMHOST_MAX_INSTANCES")]
    pub max_instances: u32,
    /// How long a request may wait for a busy endpoint before a 503.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub queue_timeout: Duration,
    /// Where a component without `describe` (a plain `wasi:http` or `wasi:cli` one) may
    /// send outgoing HTTP requests, in Spin's form: `https://api.example.com`,
    /// `http://127.0.0.1:*`, `https://*.example.com`. Repeat for more. SDK guests declare
    /// theirs with `allowed_outbound_hosts` on each function.
    #[arg(long = "allow-outbound", value_name = "SCHEME://HOST[:PORT]", value_parser = parse_outbound_host)]
    pub allow_outbound: Vec<String>,
    /// Largest response body a guest's outgoing request may read, in bytes.
    #[arg(long, default_value_t = 64 << 20, env = "WASMHOST_OUTBOUND_MAX_RESPONSE")]
    pub outbound_max_response: u64,
    /// Longest wait of a guest's outgoing request for the response head.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub outbound_timeout: Duration,
    /// Which GPU guests may use and each call's GPU budget.
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// One `--allow-outbound` entry, checked as a deploy would.
fn parse_outbound_host(
    text: &str,
) -> Result<String, crate::capabilities::outbound::HostPatternError> {
    crate::capabilities::outbound::Outbound::check(&[text]).map(|_| text.to_owned())
}

/// Front-end limits shared by the commands that serve HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 32 << 20, env = "WASMHOST_MAX_BODY")]
    pub max_body: usize,
    /// How long a request body may take to arrive, before `--body-min-rate` extends it;
    /// slower bodies get 408.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "WASMHOST_BODY_TIMEOUT")]
    pub body_timeout: Duration,
    /// Every this many bytes of a body received add a second to `--body-timeout` (0: none).
    #[arg(long, default_value_t = 64 << 10, env = "WASMHOST_BODY_MIN_RATE")]
    pub body_min_rate: u64,
    /// How long a connection may take to send a request's head, counted from when it opens
    /// or from the end of its previous response: closes slow senders and idle keep-alives.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "WASMHOST_HEADER_TIMEOUT")]
    pub header_timeout: Duration,
    /// Connections open at once; past it new connections get 503 and are closed
    /// [default: half the file-descriptor limit, 64 to 16384].
    #[arg(long, env = "WASMHOST_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Longest request target (path and query) in bytes; longer ones get 414.
    #[arg(long, default_value_t = 16 << 10)]
    pub max_url_bytes: usize,
    /// Most bytes of request headers; more get 431.
    #[arg(long, default_value_t = 128 << 10)]
    pub max_header_bytes: usize,
    /// Threads that serve connections: a connection's HTTP and its requests' guests run on
    /// one of them [default: one per core].
    #[arg(long)]
    pub serve_threads: Option<usize>,
    /// Keep each serving thread on a core of its own when there is one core for each in
    /// the process's CPU set (steadier tail latency); `false` leaves placement to the OS.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "WASMHOST_PIN_SERVE_THREADS")]
    pub pin_serve_threads: bool,
}

impl GatewayArgs {
    /// The gateway configuration these flags ask for.
    pub fn gateway_config(&self) -> crate::gateway::GatewayConfig {
        let mut config = crate::gateway::GatewayConfig {
            body: crate::shapes::BodyLimits {
                max_bytes: self.max_body,
                timeout: self.body_timeout,
                min_rate: self.body_min_rate,
            },
            ..Default::default()
        };
        let c = &mut config.connections;
        c.header_timeout = self.header_timeout;
        c.max_url_bytes = self.max_url_bytes;
        c.max_header_bytes = self.max_header_bytes;
        if let Some(n) = self.max_connections {
            c.max_connections = n.max(1);
        }
        if let Some(n) = self.serve_threads {
            c.serve_threads = n.max(1);
        }
        c.pin_serve_threads = self.pin_serve_threads;
        config
    }
}

/// GPU settings shared by the commands that run guests.
#[derive(Debug, Clone, clap::Args)]
pub struct GpuArgs {
    /// Use a software adapter (Mesa's lavapipe/llvmpipe) when there is no GPU.
    #[arg(
        long,
        value_enum,
        default_value = "none",
        env = "WASMHOST_GPU_FALLBACK"
    )]
    pub gpu_fallback: GpuFallback,
    /// GPU buffer memory one call may hold, in MiB.
    #[arg(long, default_value_t = 512, env = "WASMHOST_GPU_MEMORY")]
    pub gpu_memory: u64,
    /// GPU time one call may wait for (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "WASMHOST_GPU_TIMEOUT")]
    pub gpu_timeout: Duration,
    /// Compute dispatches one call may submit.
    #[arg(long, default_value_t = 10_000, env = "WASMHOST_GPU_DISPATCHES")]
    pub gpu_dispatches: u32,
}

/// Values of `--gpu-fallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GpuFallback {
    /// Hardware GPUs only.
    None,
    /// Allow a software adapter.
    Software,
}

impl GpuArgs {
    /// The GPU configuration these flags ask for.
    pub fn gpu_config(&self) -> crate::capabilities::gpu::GpuConfig {
        use crate::capabilities::gpu::{Fallback, GpuConfig};
        GpuConfig {
            fallback: match self.gpu_fallback {
                GpuFallback::None => Fallback::None,
                GpuFallback::Software => Fallback::Software,
            },
            call_buffer_bytes: self.gpu_memory.saturating_mul(1 << 20),
            call_dispatches: self.gpu_dispatches,
            call_gpu_time: self.gpu_timeout,
        }
    }
}

impl EngineArgs {
    /// The engine configuration these flags ask for.
    pub fn engine_config(&self) -> crate::engine::EngineConfig {
        let mut config = crate::engine::EngineConfig::new(
            self.cache_dir.clone().unwrap_or_else(default_cache_dir),
        );
        config.default_timeout = self.timeout;
        config.default_memory_mib = self.memory_limit;
        config.web_server_port = self.web_port;
        config.startup_timeout = self.startup_timeout;
        config.pre_init_snapshots = !self.no_snapshot;
        config.isolation = self.isolation.map(|i| match i {
            Isolation::Reuse => crate::engine::IsolationSetting::Reuse,
            Isolation::PerRequest => crate::engine::IsolationSetting::PerRequest,
        });
        config.scaledown_window = self.scaledown_window;
        config.min_containers = self.min_containers;
        config.buffer_containers = self.buffer_containers;
        config.max_concurrency = self.max_concurrency;
        config.max_inputs = self.max_inputs.map(|n| n as usize);
        config.queue_depth = self.queue_depth;
        config.max_instances = self.max_instances.max(1);
        config.queue_timeout = self.queue_timeout;
        config
    }

    /// The capability settings these flags ask for.
    pub fn capabilities_config(&self) -> crate::capabilities::CapabilitiesConfig {
        let mut config = crate::capabilities::CapabilitiesConfig {
            gpu: self.gpu.gpu_config(),
            plain_allowed_outbound_hosts: self.allow_outbound.clone(),
            ..Default::default()
        };
        config.outbound.max_response_bytes = self.outbound_max_response;
        config.outbound.first_byte_timeout = self.outbound_timeout;
        config
    }

    /// The engine these flags ask for.
    pub fn engine(&self) -> Result<crate::engine::Engine, crate::engine::LoadError> {
        crate::engine::Engine::with_capabilities(self.engine_config(), self.capabilities_config())
    }
}

/// Parses a duration: `30s`, `5m`, `1h 30m`, or a bare number of seconds (`2`, `0.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?}: {e} (use e.g. 30s, 5m or a number of seconds)"))
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("wasmhost")
}

/// Makes glibc hand large buffers (request and response bodies, compiled code) back to
/// the system when they are freed. By default its mmap threshold rises to the size of
/// the largest block freed so far (up to 32 MiB), after which such blocks come from
/// per-thread arenas that are seldom trimmed: 40 concurrent 31 MiB bodies left ~1.8 GiB
/// resident for good. A fixed threshold keeps every block past 1 MiB in its own mapping.
fn give_back_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; it is called before any other thread
    // exists, and a refused setting (return value 0) leaves the defaults in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::from_args();
    init_logging(cli.globals.log_format);
    crate::gateway::raise_fd_limit();
    give_back_large_buffers();
    let result = match cli.command {
        Command::Build { dir } => {
            build::build_guest(&dir).map(|wasm| println!("{}", wasm.display()))
        }
        Command::Run(args) => run::main(args),
        Command::New(args) => new::new(args),
        Command::Server(args) => server::main(args),
        Command::Deploy(args) => run_async(remote::deploy(args)),
        Command::Serve(args) => run_async(serve::serve(args)),
        Command::App(c) => run_async(remote::app(c)),
        Command::Function(c) => run_async(remote::function(c)),
        Command::Token(c) => run_async(remote::token(c)),
        Command::Call(a) => run_async(calls::call(a)),
        Command::Spawn(a) => run_async(calls::spawn(a)),
        Command::CallResult(a) => run_async(calls::call_result(a)),
        Command::Logs(a) => run_async(logs::logs(a)),
        Command::Map(a) => run_async(calls::map(a)),
        Command::Secret(c) => run_async(resources::secret(c)),
        Command::Volume(c) => run_async(resources::volume(c)),
        Command::Gpu(args) => run_async(gpu::show(args)),
        Command::Python(c) => build::python_command(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    runtime()?.block_on(fut)
}

/// The runtime every command's async work runs on.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::engine::cores())
        .enable_all()
        .build()
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WASMHOST_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,cranelift=warn,wasmtime=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .init(),
        // Targets stay: collectors tell guest output (`guest`) from the host's own lines.
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units_or_bare_seconds() {
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("150s"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
