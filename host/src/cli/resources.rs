//! `wasmhost secret ...` and `wasmhost volume ...`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::json;

use super::client::{Client, ServerFlags};

/// `wasmhost secret ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Create (or replace) a secret: `wasmhost secret create NAME KEY=VALUE...`.
    Create {
        /// Secret name.
        name: String,
        /// `KEY=VALUE` pairs; they become environment variables of functions that name the secret.
        #[arg(required = true)]
        pairs: Vec<String>,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// List secrets (names and keys; never values).
    List {
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Delete a secret.
    Delete {
        /// Secret name.
        name: String,
        #[command(flatten)]
        server: ServerFlags,
    },
}

/// `wasmhost volume ...`.
#[derive(Debug, clap::Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create {
        /// Volume name.
        name: String,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// List volumes, or the files under a path of one.
    Ls {
        /// Volume name (none: list volumes).
        name: Option<String>,
        /// Directory inside the volume.
        #[arg(default_value = "")]
        path: String,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Upload a local file into a volume.
    Put {
        /// Volume name.
        name: String,
        /// Local file.
        local: PathBuf,
        /// Path inside the volume.
        remote: String,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Download a file from a volume (to stdout, or to a local path).
    Get {
        /// Volume name.
        name: String,
        /// Path inside the volume.
        remote: String,
        /// Local file to write.
        local: Option<PathBuf>,
        #[command(flatten)]
        server: ServerFlags,
    },
}

pub(super) async fn secret(command: SecretCommand) -> anyhow::Result<()> {
    match command {
        SecretCommand::Create {
            name,
            pairs,
            server,
        } => {
            let mut values = BTreeMap::new();
            for pair in pairs {
                let Some((k, v)) = pair.split_once('=') else {
                    bail!("{pair:?} is not KEY=VALUE");
                };
                values.insert(k.to_owned(), v.to_owned());
            }
            let client = Client::new(&server)?;
            let out = client
                .send(
                    client
                        .request(reqwest::Method::POST, "/secrets")
                        .json(&json!({ "name": name, "values": values })),
                )
                .await?;
            eprintln!("secret {name} stored with keys {}", out["keys"]);
        }
        SecretCommand::List { server } => {
            let out = Client::new(&server)?.get("/secrets").await?;
            for s in out["data"].as_array().into_iter().flatten() {
                println!("{}\t{}", s["name"].as_str().unwrap_or_default(), s["keys"]);
            }
        }
        SecretCommand::Delete { name, server } => {
            let client = Client::new(&server)?;
            client
                .send(client.request(reqwest::Method::DELETE, &format!("/secrets/{name}")))
                .await?;
            eprintln!("secret {name} deleted");
        }
    }
    Ok(())
}

pub(super) async fn volume(command: VolumeCommand) -> anyhow::Result<()> {
    match command {
        VolumeCommand::Create { name, server } => {
            let client = Client::new(&server)?;
            client
                .send(
                    client
                        .request(reqwest::Method::POST, "/volumes")
                        .json(&json!({ "name": name })),
                )
                .await?;
            eprintln!("volume {name} created");
        }
        VolumeCommand::Ls { name, path, server } => {
            let client = Client::new(&server)?;
            match name {
                None => {
                    for v in client.get("/volumes").await?["data"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        println!("{}", v["name"].as_str().unwrap_or_default());
                    }
                }
                Some(name) => {
                    let out = client
                        .get(&format!("/volumes/{name}/files/{}", encode_path(&path)))
                        .await?;
                    for e in out["data"].as_array().into_iter().flatten() {
                        let kind = if e["type"] == "directory" { "d" } else { "-" };
                        println!(
                            "{kind} {:>10} {}",
                            e["size"],
                            e["path"].as_str().unwrap_or_default()
                        );
                    }
                }
            }
        }
        VolumeCommand::Put {
            name,
            local,
            remote,
            server,
        } => {
            let client = Client::new(&server)?;
            let bytes = std::fs::read(&local)
                .with_context(|| format!("cannot read {}", local.display()))?;
            let remote = remote.trim_start_matches('/');
            client
                .send(
                    client
                        .request(
                            reqwest::Method::PUT,
                            &format!("/volumes/{name}/files/{}", encode_path(remote)),
                        )
                        .body(bytes),
                )
                .await?;
            eprintln!("uploaded {} to {name}:/{remote}", local.display());
        }
        VolumeCommand::Get {
            name,
            remote,
            local,
            server,
        } => {
            let client = Client::new(&server)?;
            let remote = remote.trim_start_matches('/');
            let response = client
                .request(
                    reqwest::Method::GET,
                    &format!("/volumes/{name}/files/{}", encode_path(remote)),
                )
                .send()
                .await
                .context("cannot reach the server")?;
            if !response.status().is_success() {
                bail!("{}", response.text().await.unwrap_or_default());
            }
            let bytes = response.bytes().await?;
            match local {
                Some(path) => std::fs::write(&path, &bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
        }
    }
    Ok(())
}

/// Percent-encodes each segment of a volume path for the URL, keeping the `/` between them.
fn encode_path(path: &str) -> String {
    /// Everything but unreserved characters (RFC 3986).
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    path.split('/')
        .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}
