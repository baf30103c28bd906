//! `wasmhost run`: serve one component locally, Modal's `modal serve` without the cloud.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::EngineArgs;
use crate::control::{ControlPlane, DeployOptions, DeployResult};
use crate::engine::{
    CacheOutcome, ComponentBytes, EarlyEngine, Engine, LoadError, LoadedComponent, PreInit,
};
use crate::gateway::{Gateway, GatewayConfig, Route, RouteTable, ServingThreads};
use crate::shapes::WebApp;
use crate::store::CallStatus;

/// Arguments of `wasmhost run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A component (.wasm) or a guest crate directory (built for wasm32-wasip2 first).
    target: PathBuf,
    /// Port to listen on.
    #[arg(long, default_value_t = 8000, env = "WASMHOST_PORT")]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// A web call running longer is answered 303 and collected by following it.
    #[arg(long, default_value = "150s", value_parser = super::parse_duration)]
    request_timeout: std::time::Duration,
    /// Run this function once and print its result instead of serving (Modal's `modal run`).
    #[arg(long)]
    function: Option<String>,
    /// Positional arguments for --function, as a JSON list.
    #[arg(long, requires = "function")]
    args: Option<String>,
    /// Keyword arguments for --function, as a JSON object.
    #[arg(long, requires = "function")]
    kwargs: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    gateway: super::GatewayArgs,
}

/// Runs `wasmhost run`. The engine (the pooling allocator's reservations and the linker,
/// a quarter of the time to the first answer) is built on a thread of its own while the
/// port is bound, the serving threads start and the data directory opens.
pub(super) fn main(args: RunArgs) -> anyhow::Result<()> {
    let (config, capabilities) = (
        args.engine.engine_config(),
        args.engine.capabilities_config(),
    );
    // Threads first, and the component read: while the engine thread reserves its pools,
    // page faults elsewhere wait on the same address-space lock (reading and hashing then
    // took 1-1.7 ms instead of ~0.3). Hashing and scanning the bytes read fault nothing,
    // so they run beside the engine's build.
    let runtime = super::runtime()?;
    let wasm = super::build_guest(&args.target)?;
    let bytes = std::fs::read(&wasm)
        .map_err(LoadError::reading(&wasm))
        .with_context(|| format!("cannot serve {}", wasm.display()))?;
    let (built, engine) = oneshot::channel();
    let (early_tx, early) = oneshot::channel();
    std::thread::Builder::new()
        .name("wasmhost-engine".into())
        .spawn(move || {
            let engine = Engine::with_capabilities_early(config, capabilities, |early| {
                let _ = early_tx.send(early);
            });
            let _ = built.send(engine);
        })?;
    let bytes = ComponentBytes::new(bytes);
    runtime.block_on(run(args, wasm, bytes, (early, engine)))
}

/// What `run` does with the component.
enum Mode {
    /// Runs this function once and prints its result.
    Function(String),
    /// Serves its endpoints on this listener, on these threads.
    Serve(TcpListener, ServingThreads),
}

/// Builds the app (its engine, control plane and component, each while the others are
/// made), then runs its function once or serves it until a shutdown signal.
async fn run(
    args: RunArgs,
    wasm: PathBuf,
    mut bytes: ComponentBytes,
    (early, engine): (
        oneshot::Receiver<EarlyEngine>,
        oneshot::Receiver<Result<Engine, LoadError>>,
    ),
) -> anyhow::Result<()> {
    // Functions, retries, volumes and calls between functions work as on a server: the app
    // is deployed into an ephemeral control plane whose state is gone when `run` ends.
    let data = tempfile::tempdir()?;
    let mode = mode(&args).await?;
    let port = match &mode {
        Mode::Serve(listener, _) => listener.local_addr()?.port(),
        Mode::Function(_) => 0,
    };
    // The data directory and the in-memory store open here while the engine thread builds
    // the engine (on two cores, a worker thread would take the engine thread's core).
    let opened = ControlPlane::open_data(super::serve::ephemeral_config(data.path(), port))?;
    // The cached native code is mapped here while the engine thread builds the linker.
    // Blocking is fine: this thread runs nothing else yet (the runtime's workers are
    // other threads).
    if let Ok(early) = early.await {
        early.map_cached(&mut bytes);
    }
    let engine = Arc::new(engine.await.context("the engine thread failed")??);
    // The control plane (function workers, nothing to restore) starts on a worker thread
    // while the component is prepared here (its code was mapped above).
    let control = tokio::spawn({
        let engine = engine.clone();
        async move { ControlPlane::start(opened, engine).await }
    });
    let (component, control) = tokio::join!(engine.load_read(&wasm, bytes), control);
    let component = component.with_context(|| format!("cannot serve {}", wasm.display()))?;
    let (control, _) = control.context("opening the control plane panicked")??;
    log_loaded(&component, &wasm);
    let (listener, threads) = match mode {
        Mode::Serve(listener, threads) => (listener, threads),
        Mode::Function(name) => {
            let input = function_input(
                &component,
                &name,
                args.args.as_deref(),
                args.kwargs.as_deref(),
            )?;
            let deployed = control.deploy_loaded(&wasm, component, ephemeral()).await?;
            return run_function(&control, &deployed, &name, input).await;
        }
    };
    serve_app(&args, &control, &wasm, component, (listener, threads), port).await
}

/// A function runs once; an app is served on a port bound while the engine is built.
async fn mode(args: &RunArgs) -> anyhow::Result<Mode> {
    Ok(match &args.function {
        Some(name) => Mode::Function(name.clone()),
        None => {
            let addr = SocketAddr::new(args.host, args.port);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            // Started while the engine is built; they wait for the app.
            let threads = ServingThreads::start(&args.gateway.gateway_config().connections)?;
            Mode::Serve(listener, threads)
        }
    })
}

/// Logs how the component was loaded and how long it took.
fn log_loaded(component: &LoadedComponent, wasm: &Path) {
    let how = match component.cache {
        CacheOutcome::Hit => "native code from the cache",
        CacheOutcome::Compiled => "compiled now, cached for next time",
    };
    let init = match component.pre_init {
        PreInit::None => "",
        PreInit::Snapshot { cached: true } => "; init work from its cached snapshot",
        PreInit::Snapshot { cached: false } => "; init work baked into a snapshot now",
        PreInit::EachInstance => "; init work runs in every new instance",
    };
    tracing::info!(
        app = %component.manifest.app,
        "loaded {} in {:.1} ms ({how}{init})",
        wasm.display(),
        component.load_time.as_secs_f64() * 1e3
    );
}

/// Deploys the app, prints its URLs and serves its endpoints until a shutdown signal,
/// then runs its shutdown hooks.
async fn serve_app(
    args: &RunArgs,
    control: &ControlPlane,
    wasm: &Path,
    component: LoadedComponent,
    (listener, threads): (TcpListener, ServingThreads),
    port: u16,
) -> anyhow::Result<()> {
    if component.manifest.endpoints.is_empty() {
        anyhow::bail!(
            "{} describes no web endpoints: nothing to serve",
            wasm.display()
        );
    }
    let deployed = control.deploy_loaded(wasm, component, ephemeral()).await?;
    let app = control
        .web_app(deployed.app_id())
        .context("the app stopped right after its deploy")?;
    let routes = local_routes(&app);
    for host in routes.hosts() {
        println!("http://{host}:{port}/");
    }
    if app.manifest().endpoints.len() == 1 {
        println!("http://{}/", SocketAddr::new(args.host, port));
    }
    let config = GatewayConfig {
        request_timeout: Some(args.request_timeout),
        // Local development: the URLs were printed at start anyway.
        list_hosts: true,
        ..args.gateway.gateway_config()
    };
    let gateway = Gateway::new(routes, config);
    gateway.observe(app.engine().clone());
    gateway
        .serve_on(threads, listener, super::shutdown_signal())
        .await?;
    // Run the guests' shutdown hooks (bounded: a hook that hangs cannot hold the exit).
    if tokio::time::timeout(std::time::Duration::from_secs(10), app.retire())
        .await
        .is_err()
    {
        tracing::warn!("shutdown hooks did not finish in 10 s");
    }
    Ok(())
}

/// `<app>-<function>.localhost` for every endpoint (and `<label>.localhost` for labels);
/// a single endpoint also answers on the bare address.
fn local_routes(app: &Arc<WebApp>) -> RouteTable {
    let mut routes = RouteTable::new();
    let manifest = app.manifest();
    for (endpoint, spec) in manifest.endpoints.iter().enumerate() {
        let route = Route {
            app: app.clone(),
            endpoint,
        };
        routes.insert(
            format!("{}-{}.localhost", manifest.app, spec.dns_name()),
            route.clone(),
        );
        if let Some(label) = &spec.label {
            routes.insert(format!("{label}.localhost"), route.clone());
        }
        if manifest.endpoints.len() == 1 {
            routes.set_fallback(route);
        }
    }
    routes
}

/// How `run` deploys: under the app's own name, removed when `run` ends.
fn ephemeral() -> DeployOptions {
    DeployOptions {
        name: None,
        environment: None,
        ephemeral: true,
        ..Default::default()
    }
}

/// The input of `--function name`, checked against the function's parameters.
fn function_input(
    component: &LoadedComponent,
    name: &str,
    args: Option<&str>,
    kwargs: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let Some(spec) = component.manifest.function(name) else {
        let names: Vec<&str> = component
            .manifest
            .functions
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        anyhow::bail!(
            "no function {name:?} in this component (it has: {})",
            names.join(", ")
        );
    };
    let input = super::calls::input(args, kwargs)?;
    if let Err(detail) = crate::functions::input::check(spec, &input) {
        anyhow::bail!("invalid input: {detail}");
    }
    Ok(input)
}

/// Runs one function once (with its retries), prints its JSON result, and fails with its
/// error.
async fn run_function(
    control: &ControlPlane,
    deployed: &DeployResult,
    name: &str,
    input: serde_json::Value,
) -> anyhow::Result<()> {
    let id = deployed
        .function_id(name)
        .with_context(|| format!("function {name:?} was not deployed"))?;
    let record = control.functions().invoke(id, input).await?;
    match (record.status, record.result, record.error) {
        (CallStatus::Success, result, _) => {
            println!("{}", result.unwrap_or(serde_json::Value::Null));
            Ok(())
        }
        (_, _, Some(error)) => {
            let message = error["message"]
                .as_str()
                .map_or_else(|| error.to_string(), str::to_owned);
            anyhow::bail!("{name} failed: {message}")
        }
        (status, _, None) => anyhow::bail!("{name} ended {status:?} without a result"),
    }
}
