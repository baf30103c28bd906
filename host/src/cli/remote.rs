//! Commands that talk to a running `wasmhost server`: deploy, app, function, token.

use std::path::PathBuf;

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::client::{Client, ServerFlags};

/// Arguments of `wasmhost deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// A component (.wasm) or a guest crate directory (built first).
    target: PathBuf,
    /// App name [default: the component's own].
    #[arg(long)]
    name: Option<String>,
    /// Environment [default: the server's].
    #[arg(long)]
    env: Option<String>,
    #[command(flatten)]
    server: ServerFlags,
}

/// `wasmhost app ...`.
#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// List apps.
    List {
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Stop an app (by name or id); its endpoints stop answering.
    Stop {
        /// App name or id.
        app: String,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// List an app's deployed versions: digest, time, who deployed it.
    History {
        /// App name or id.
        app: String,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Serve an earlier version again (as a new version); requests in flight finish on
    /// the version they started on.
    Rollback {
        /// App name or id.
        app: String,
        /// The version to go back to [default: the one before the current].
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        server: ServerFlags,
    },
}

/// `wasmhost function ...`.
#[derive(Debug, clap::Subcommand)]
pub enum FunctionCommand {
    /// List functions with their web URLs.
    List {
        /// Only this app (name or id).
        #[arg(long)]
        app: Option<String>,
        #[command(flatten)]
        server: ServerFlags,
    },
}

/// `wasmhost token ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its id and secret (shown once).
    Create {
        /// A name to recognise it by.
        #[arg(long, default_value = "token")]
        name: String,
        /// What it may do: `admin` (everything), `deploy` (deploys, apps, volumes, and
        /// what `invoke` may), `invoke` (reads and function calls), `proxy-auth` (only the
        /// keys of proxy-auth web endpoints).
        #[arg(long, default_value = "admin")]
        scope: crate::store::Scope,
        /// Create it directly in this data directory (server stopped) instead of over the API.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// List tokens (ids, names and scopes; never secrets).
    List {
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id (`tk-…`).
        token_id: String,
        #[command(flatten)]
        server: ServerFlags,
    },
}

pub(super) async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let target = args.target.clone();
    let wasm = tokio::task::spawn_blocking(move || super::build_guest(&target)).await??;
    let file = tokio::fs::File::open(&wasm)
        .await
        .with_context(|| format!("cannot open {}", wasm.display()))?;
    let size = file.metadata().await?.len();
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("uploading {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
        if let Ok(c) = chunk {
            progress.inc(c.len() as u64);
        }
    });
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(name) = &args.name {
        query.push(("name", name.clone()));
    }
    if let Some(env) = &args.env {
        query.push(("environment", env.clone()));
    }
    let request = client
        .request(reqwest::Method::POST, "/deployments")
        .query(&query)
        .header("content-type", "application/wasm")
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(stream));
    let result = client.send(request).await;
    bar.finish_and_clear();
    let result = result.with_context(|| format!("deploy of {} failed", wasm.display()))?;
    let name = result["name"].as_str().unwrap_or_default();
    if result["changed"] == Value::Bool(false) {
        eprintln!(
            "{name}: unchanged (version {}), nothing to do",
            result["version"]
        );
    } else {
        eprintln!("deployed {name} version {}", result["version"]);
    }
    for f in result["functions"].as_array().into_iter().flatten() {
        if let Some(url) = f["web_url"].as_str() {
            println!("{url}");
        }
    }
    Ok(())
}

pub(super) async fn app(command: AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::List { server } => {
            let apps = Client::new(&server)?.get("/apps").await?;
            println!(
                "{:<22} {:<24} {:<10} {:<8} VERSION",
                "APP ID", "NAME", "STATE", "ENV"
            );
            for a in apps["data"].as_array().into_iter().flatten() {
                println!(
                    "{:<22} {:<24} {:<10} {:<8} {}",
                    text(&a["app_id"]),
                    text(&a["name"]),
                    text(&a["state"]),
                    text(&a["environment"]),
                    a["version"]
                );
            }
        }
        AppCommand::Stop { app, server } => {
            let client = Client::new(&server)?;
            let found = client.find_app(&app).await?;
            let id = text(&found["app_id"]);
            client
                .send(client.request(reqwest::Method::DELETE, &format!("/apps/{id}")))
                .await?;
            eprintln!("stopped {}", text(&found["name"]));
        }
        AppCommand::History { app, server } => super::history::history(&app, &server).await?,
        AppCommand::Rollback {
            app,
            version,
            server,
        } => super::history::rollback(&app, version, &server).await?,
    }
    Ok(())
}

pub(super) async fn function(command: FunctionCommand) -> anyhow::Result<()> {
    let FunctionCommand::List { app, server } = command;
    let client = Client::new(&server)?;
    let apps = match app {
        Some(a) => vec![client.find_app(&a).await?],
        None => client.get("/apps").await?["data"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    println!("{:<22} {:<16} {:<24} WEB URL", "FUNCTION ID", "APP", "NAME");
    for a in apps {
        let functions = client
            .get(&format!("/apps/{}/functions", text(&a["app_id"])))
            .await?;
        for f in functions["data"].as_array().into_iter().flatten() {
            println!(
                "{:<22} {:<16} {:<24} {}",
                text(&f["function_id"]),
                text(&a["name"]),
                text(&f["name"]),
                f["web_url"].as_str().unwrap_or("-")
            );
        }
    }
    Ok(())
}

pub(super) async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scope,
            data_dir,
            server,
        } => {
            let (id, secret) = match data_dir {
                Some(dir) => {
                    let store = crate::store::Store::open(&dir.join("state.redb")).with_context(|| {
                        format!("cannot open {} (is a server using it? then create the token over the API)", dir.display())
                    })?;
                    let t = store.create_token(&name, scope)?;
                    (t.token_id, t.token_secret)
                }
                None => {
                    let client = Client::new(&server)?;
                    let t =
                        client
                            .send(client.request(reqwest::Method::POST, "/tokens").json(
                                &serde_json::json!({ "name": name, "scope": scope.as_str() }),
                            ))
                            .await?;
                    (text(&t["token_id"]), text(&t["token_secret"]))
                }
            };
            println!("token id:     {id}");
            println!("token secret: {secret}   (shown once)");
            println!("bearer:       {id}:{secret}");
        }
        TokenCommand::List { server } => {
            let tokens = Client::new(&server)?.get("/tokens").await?;
            for t in tokens["data"].as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:<20} {:<10} {}",
                    text(&t["token_id"]),
                    text(&t["name"]),
                    text(&t["scope"]),
                    text(&t["created_at"])
                );
            }
        }
        TokenCommand::Revoke { token_id, server } => {
            let client = Client::new(&server)?;
            client
                .send(client.request(reqwest::Method::DELETE, &format!("/tokens/{token_id}")))
                .await?;
            println!("revoked {token_id}");
        }
    }
    Ok(())
}

/// A JSON string as is, anything else as JSON.
pub(super) fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}
