//! The `wasmhost` command line: `run`, `build`, `gpu`.

mod build;
mod gpu;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub use build::build_guest;

/// Runs WebAssembly components in a sandbox and serves them over HTTP.
#[derive(Debug, Parser)]
#[command(name = "wasmhost", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a component (or a guest crate, built first) on a local port.
    Run(run::RunArgs),
    /// Build a guest crate for wasm32-wasip2 and print the path of its component.
    Build {
        /// The guest crate's directory.
        dir: PathBuf,
    },
    /// Show the GPU adapter guests would get, or why there is none.
    Gpu(GpuArgs),
}

/// Engine settings shared by the commands that run guests.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Time limit of a call when the endpoint sets none (e.g. 30s, 5m).
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration, env = "WASMHOST_TIMEOUT")]
    pub timeout: Duration,
    /// Memory cap of an instance in MiB when the endpoint sets none.
    #[arg(long, default_value_t = 256, env = "WASMHOST_MEMORY_LIMIT")]
    pub memory_limit: u32,
    /// Where compiled native code is cached [default: $XDG_CACHE_HOME/wasmhost or ~/.cache/wasmhost].
    #[arg(long, env = "WASMHOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub gpu: GpuArgs,
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
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, env = "WASMHOST_GPU_TIMEOUT")]
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
        config.gpu = self.gpu.gpu_config();
        config
    }
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("wasmhost")
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Build { dir } => {
            build::build_guest(&dir).map(|wasm| println!("{}", wasm.display()))
        }
        Command::Run(args) => run_async(run::run(args)),
        Command::Gpu(args) => run_async(gpu::show(args)),
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
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WASMHOST_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,cranelift=warn,wasmtime=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
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
