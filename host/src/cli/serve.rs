//! `wasmhost serve`: an ephemeral app with `-dev` URLs, rebuilt and swapped when its
//! source changes, removed on Ctrl-C (Modal's `modal serve`). Runs on the configured
//! server, or in-process when none is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use serde_json::Value;
use tokio::net::TcpListener;

use super::client::{Client, ServerFlags};
use super::{EngineArgs, SourceKind};
use crate::control::{ControlPlane, DeployOptions, ServerConfig, UrlScheme};
use crate::gateway::{Gateway, RouteTable};

/// Arguments of `wasmhost serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A guest crate directory (rebuilt on change) or a component file (reloaded on change).
    target: PathBuf,
    /// App name [default: the component's own].
    #[arg(long)]
    name: Option<String>,
    /// Serve in this process even when a server is configured.
    #[arg(long)]
    local: bool,
    /// Port of the in-process server.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    #[command(flatten)]
    server: ServerFlags,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    gateway: super::GatewayArgs,
}

/// Where the ephemeral app lives.
enum Target {
    Remote(Client),
    Local {
        control: Arc<ControlPlane>,
        /// Holds the throw-away data directory until the session ends.
        _data: tempfile::TempDir,
    },
}

impl Target {
    async fn deploy(&self, wasm: &Path, name: Option<String>) -> anyhow::Result<Value> {
        match self {
            Target::Remote(client) => {
                let bytes = tokio::fs::read(wasm).await?;
                let mut query = vec![("ephemeral", "true".to_string())];
                if let Some(n) = name {
                    query.push(("name", n));
                }
                let request = client
                    .request(reqwest::Method::POST, "/deployments")
                    .query(&query)
                    .header("content-type", "application/wasm")
                    .body(bytes);
                client.send(request).await
            }
            Target::Local { control, .. } => {
                let options = DeployOptions {
                    name,
                    environment: None,
                    ephemeral: true,
                    ..Default::default()
                };
                let result = control.deploy_file(wasm, options).await?;
                Ok(serde_json::to_value(result)?)
            }
        }
    }

    async fn remove(&self, app_id: &str) -> anyhow::Result<()> {
        match self {
            Target::Remote(client) => {
                client
                    .send(client.request(reqwest::Method::DELETE, &format!("/apps/{app_id}")))
                    .await?;
            }
            Target::Local { control, .. } => control.stop(app_id).await?,
        }
        Ok(())
    }
}

/// A control plane's settings for an ephemeral local host whose state lives in `data`
/// (gone when the command ends) and whose URLs are `*.localhost:<port>`.
pub(super) fn ephemeral_config(data: &Path, port: u16) -> ServerConfig {
    ServerConfig {
        data_dir: data.to_owned(),
        workspace: "main".into(),
        default_environment: "main".into(),
        urls: UrlScheme {
            base_domain: "localhost".into(),
            port,
            default_environment: "main".into(),
        },
        map_concurrency: 16,
        result_retention: std::time::Duration::from_secs(7 * 24 * 3600),
        max_upload_bytes: 256 << 20,
        database: crate::store::Database::InMemory,
    }
}

async fn local(args: &ServeArgs) -> anyhow::Result<(Target, Arc<Gateway>, TcpListener)> {
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let port = listener.local_addr()?.port();
    let data = tempfile::tempdir()?;
    let engine = Arc::new(args.engine.engine()?);
    let (control, _) =
        ControlPlane::open(ephemeral_config(data.path(), port), engine.clone()).await?;
    let gateway = Gateway::with_api(
        RouteTable::new(),
        args.gateway.gateway_config(),
        control.clone(),
    );
    control.attach(&gateway);
    gateway.observe(engine);
    Ok((
        Target::Local {
            control,
            _data: data,
        },
        gateway,
        listener,
    ))
}

fn print_urls(result: &Value) {
    for f in result["functions"].as_array().into_iter().flatten() {
        if let Some(url) = f["web_url"].as_str() {
            println!("{url}");
        }
    }
}

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (target, local_server) = if args.server.has_token() && !args.local {
        (Target::Remote(Client::new(&args.server)?), None)
    } else {
        let (target, gateway, listener) = local(&args).await?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(listener, async move {
            let _ = stop_rx.await;
        }));
        (target, Some((stop_tx, task)))
    };
    let source = args.target.clone();
    let wasm = tokio::task::spawn_blocking(move || super::build_guest(&source)).await??;
    let first = target.deploy(&wasm, args.name.clone()).await?;
    let app_id = first["app_id"].as_str().unwrap_or_default().to_owned();
    eprintln!("serving {} (ephemeral; Ctrl-C removes it)", first["name"]);
    print_urls(&first);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let kind = SourceKind::of(&args.target);
    let watched = if args.target.is_dir() {
        args.target.clone()
    } else {
        args.target
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let file_only = (!kind.watch_whole_dir())
        .then(|| args.target.canonicalize().ok())
        .flatten();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.kind.is_modify() | event.kind.is_create() | event.kind.is_remove()
            && event
                .paths
                .iter()
                .any(|p| relevant(p, file_only.as_deref()))
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&watched, RecursiveMode::Recursive)?;

    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(()) = rx.recv() => {
                // Let a burst of saves settle into one rebuild.
                tokio::time::sleep(Duration::from_millis(300)).await;
                while rx.try_recv().is_ok() {}
                let source = args.target.clone();
                let rebuilt = tokio::task::spawn_blocking(move || super::build_guest(&source)).await?;
                match rebuilt {
                    Ok(wasm) => match target.deploy(&wasm, args.name.clone()).await {
                        Ok(r) if r["changed"] == Value::Bool(false) => {}
                        Ok(r) => eprintln!("reloaded {} (version {})", r["name"], r["version"]),
                        Err(e) => eprintln!("reload failed, still serving the previous version: {e:#}"),
                    },
                    Err(e) => eprintln!("build failed, still serving the previous version: {e:#}"),
                }
            }
        }
    }
    if let Err(e) = target.remove(&app_id).await {
        eprintln!("could not remove the ephemeral app: {e:#}");
    }
    if let Some((stop, task)) = local_server {
        let _ = stop.send(());
        let _ = task.await;
    }
    Ok(())
}

/// Source changes matter; build output and editor droppings do not.
fn relevant(path: &Path, file_only: Option<&Path>) -> bool {
    if let Some(file) = file_only {
        return path.canonicalize().is_ok_and(|p| p == file);
    }
    !path.components().any(|c| {
        let s = c.as_os_str().to_string_lossy();
        // Build outputs and caches, which a rebuild itself writes.
        s == "target" || s == "__pycache__" || s == "node_modules" || s.starts_with('.')
    }) && !path.to_string_lossy().ends_with('~')
}
