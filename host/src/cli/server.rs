//! `wasmhost server`: the long-running host with the control API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use tokio::net::TcpListener;

use super::EngineArgs;
use crate::control::{ControlPlane, ServerConfig, UrlScheme};
use crate::engine::Engine;
use crate::gateway::{Gateway, GatewayConfig, RouteTable};

/// Arguments of `wasmhost server`; each may also come from the TOML file given by `--config`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// TOML file with any of: data_dir, database, port, host, base_domain, workspace, environment, max_upload_bytes,
    /// request_timeout, map_concurrency, result_retention, max_loaded_components,
    /// max_loaded_mib, and per-function scaling tables
    /// `[functions."<app>.<function>"]` (max_inputs, min_containers, max_containers,
    /// buffer_containers, scaledown_window, isolation, allowed_outbound_hosts) over the
    /// guest's attributes.
    #[arg(long, env = "WASMHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Where state, components and compiled code live [default: ./wasmhost-data].
    #[arg(long, env = "WASMHOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Port for endpoints and, under /v1, the control API [default: 8000].
    #[arg(long, env = "WASMHOST_PORT")]
    port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    host: Option<std::net::IpAddr>,
    /// Domain under which endpoints are named [default: localhost].
    #[arg(long, env = "WASMHOST_BASE_DOMAIN")]
    base_domain: Option<String>,
    /// Workspace name in URLs [default: main].
    #[arg(long)]
    workspace: Option<String>,
    /// Environment used when a deploy names none [default: main].
    #[arg(long)]
    environment: Option<String>,
    /// Largest accepted upload in bytes [default: 268435456 = 256 MiB].
    #[arg(long)]
    max_upload_bytes: Option<u64>,
    /// A web call running longer is answered 303 and collected by following it [default: 150s].
    #[arg(long, value_parser = super::parse_duration)]
    request_timeout: Option<std::time::Duration>,
    /// Inputs of one `map` running at once [default: 16].
    #[arg(long)]
    map_concurrency: Option<usize>,
    /// How long finished call records are kept [default: 7d].
    #[arg(long, value_parser = super::parse_duration)]
    result_retention: Option<std::time::Duration>,
    /// Deployed components whose compiled code stays loaded at once; the least recently
    /// called is evicted past it and loaded again (a mapping of its cached native code) on
    /// its next call [default: unbounded].
    #[arg(long, env = "WASMHOST_MAX_LOADED_COMPONENTS", value_parser = clap::value_parser!(u64).range(1..))]
    max_loaded_components: Option<u64>,
    /// Estimated MiB of loaded compiled code (mapped native code plus 128 KiB each) kept
    /// at once, evicted like --max-loaded-components [default: unbounded].
    #[arg(long, env = "WASMHOST_MAX_LOADED_MIB", value_parser = clap::value_parser!(u64).range(1..))]
    max_loaded_mib: Option<u64>,
    /// Keep the state in PostgreSQL (`postgres://user@host:port/db`), shared by every host
    /// started with the same URL (cluster mode); each host needs the same secrets.key in
    /// its data directory [default: state.redb in the data directory].
    #[arg(long, env = "WASMHOST_DATABASE")]
    database: Option<String>,
    /// Serve `/metrics` without a token (by default it needs any valid bearer token).
    #[arg(long, env = "WASMHOST_PUBLIC_METRICS")]
    public_metrics: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    gateway: super::GatewayArgs,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database: Option<String>,
    port: Option<u16>,
    host: Option<std::net::IpAddr>,
    base_domain: Option<String>,
    workspace: Option<String>,
    environment: Option<String>,
    max_upload_bytes: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    request_timeout: Option<std::time::Duration>,
    map_concurrency: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    result_retention: Option<std::time::Duration>,
    max_loaded_components: Option<u64>,
    max_loaded_mib: Option<u64>,
    #[serde(default)]
    functions: std::collections::BTreeMap<String, crate::engine::ScalingOverride>,
}

/// How long an exiting server waits for its store to close.
const STORE_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the server until a shutdown signal, then waits for its store to close: an
/// embedded store the process leaves open is repaired at the next start (a scan of the
/// whole file and four more `fdatasync`s before the host serves), and the call-log lines
/// still on their way to it would be lost.
pub(super) fn main(args: ServerArgs) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    let mut closing = None;
    let result = runtime.block_on(server(args, &mut closing));
    // Dropping the runtime drops its tasks and their handles of the store; the call-log
    // writer then stores what it holds and lets go of the last one.
    drop(runtime);
    if let Some(watch) = closing
        && !watch.wait(STORE_CLOSE_TIMEOUT)
    {
        eprintln!(
            "warning: the state store did not close within {STORE_CLOSE_TIMEOUT:?}; \
             the next start checks it"
        );
    }
    result
}

/// The server; `closing` receives the watch of its store's close once the store is open.
async fn server(
    mut args: ServerArgs,
    closing: &mut Option<crate::store::CloseWatch>,
) -> anyhow::Result<()> {
    // Everything the server writes (state, components, volumes, cache) is private to the
    // user running it: 0600 files, 0700 directories.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let mut file = read_config_file(args.config.as_deref())?;
    let data_dir = args
        .data_dir
        .take()
        .or(file.data_dir.take())
        .unwrap_or_else(|| PathBuf::from("wasmhost-data"));
    let host = args.host.or(file.host).unwrap_or([127, 0, 0, 1].into());
    let port = args.port.or(file.port).unwrap_or(8000);
    let addr = SocketAddr::new(host, port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let port = listener.local_addr()?.port();
    let config = server_config(&mut args, &mut file, data_dir.clone(), port)?;
    let engine_config = engine_config(&args, &mut file, &data_dir)?;
    // The engine (its pools, the linker) is built on a thread of its own while the data
    // directory and the store open here.
    let capabilities = args.engine.capabilities_config();
    let engine =
        tokio::task::spawn_blocking(move || Engine::with_capabilities(engine_config, capabilities));
    let opened = ControlPlane::open_data(config)
        .with_context(|| format!("cannot open the data directory {}", data_dir.display()))?;
    *closing = opened.close_watch();
    let engine = Arc::new(engine.await.context("the engine thread panicked")??);
    let (control, startup) = ControlPlane::start(opened, engine.clone())
        .await
        .with_context(|| format!("cannot open the data directory {}", data_dir.display()))?;
    let gateway_config = GatewayConfig {
        request_timeout: Some(
            args.request_timeout
                .or(file.request_timeout)
                .unwrap_or(std::time::Duration::from_secs(150)),
        ),
        public_metrics: args.public_metrics,
        ..args.gateway.gateway_config()
    };
    let gateway = Gateway::with_api(RouteTable::new(), gateway_config, control.clone());
    control.attach(&gateway);
    gateway.observe(engine);
    let base = format!("http://{}", SocketAddr::new(host, port));
    print_startup(&base, &data_dir, &startup);
    gateway.serve(listener, super::shutdown_signal()).await?;
    let stopped = control.functions().stop();
    if stopped > 0 {
        println!("{stopped} running call(s) will run again at the next start");
    }
    Ok(())
}

/// Reads the `--config` file, if one is given.
fn read_config_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    Ok(match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => FileConfig::default(),
    })
}

/// The control plane's settings: each flag, else the config file's value, else its default.
fn server_config(
    args: &mut ServerArgs,
    file: &mut FileConfig,
    data_dir: PathBuf,
    port: u16,
) -> anyhow::Result<ServerConfig> {
    let environment = args
        .environment
        .take()
        .or(file.environment.take())
        .unwrap_or_else(|| "main".into());
    let database =
        crate::store::Database::parse(args.database.take().or(file.database.take()).as_deref())?;
    Ok(ServerConfig {
        data_dir,
        database,
        workspace: args
            .workspace
            .take()
            .or(file.workspace.take())
            .unwrap_or_else(|| "main".into()),
        default_environment: environment.clone(),
        urls: UrlScheme {
            base_domain: args
                .base_domain
                .take()
                .or(file.base_domain.take())
                .unwrap_or_else(|| "localhost".into()),
            port,
            default_environment: environment,
        },
        map_concurrency: args.map_concurrency.or(file.map_concurrency).unwrap_or(16),
        result_retention: args
            .result_retention
            .or(file.result_retention)
            .unwrap_or(std::time::Duration::from_secs(7 * 24 * 3600)),
        max_upload_bytes: args
            .max_upload_bytes
            .or(file.max_upload_bytes)
            .unwrap_or(256 << 20),
    })
}

/// The engine's settings: the flags, the config file's per-function overrides (checked
/// here) and the loaded-code budget.
fn engine_config(
    args: &ServerArgs,
    file: &mut FileConfig,
    data_dir: &Path,
) -> anyhow::Result<crate::engine::EngineConfig> {
    let mut engine_config = args.engine.engine_config();
    if let Some(key) = file.functions.keys().find(|k| !k.contains('.')) {
        anyhow::bail!("[functions.{key:?}] in the config file: name functions `<app>.<function>`");
    }
    for (key, over) in &file.functions {
        if let Some(hosts) = &over.allowed_outbound_hosts {
            crate::capabilities::outbound::Outbound::check(hosts)
                .with_context(|| format!("[functions.{key:?}] in the config file"))?;
        }
    }
    engine_config.scaling_overrides = std::mem::take(&mut file.functions);
    let max_components = args.max_loaded_components.or(file.max_loaded_components);
    let max_mib = args.max_loaded_mib.or(file.max_loaded_mib);
    if max_components == Some(0) || max_mib == Some(0) {
        anyhow::bail!("max_loaded_components and max_loaded_mib must be at least 1");
    }
    engine_config.code_budget = crate::engine::CodeBudget {
        max_components: max_components.map(|n| n as usize),
        max_bytes: max_mib.map(|mib| mib << 20),
    };
    if args.engine.cache_dir.is_none() {
        engine_config.cache_dir = data_dir.join("cache");
    }
    Ok(engine_config)
}

/// Tells the operator where the server listens, where its data is and what it restored.
fn print_startup(base: &str, data_dir: &Path, startup: &crate::control::Startup) {
    println!("wasmhost server listening on {base} (control API at {base}/v1)");
    println!("data directory: {}", data_dir.display());
    if startup.admin_token.is_some() {
        println!(
            "created an admin token in {} (mode 0600); use it with:",
            startup.admin_token_path.display()
        );
        println!(
            "  export WASMHOST_SERVER={base} WASMHOST_TOKEN=$(cat {})",
            startup.admin_token_path.display()
        );
        println!("  wasmhost token create --name <name>    # more tokens");
    }
    if startup.restored > 0 {
        println!("restored {} deployed app(s)", startup.restored);
    }
    if startup.resumed_calls > 0 {
        println!("resumed {} unfinished call(s)", startup.resumed_calls);
    }
}
