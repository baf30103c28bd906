//! A small client of the control API for the CLI's remote commands.

use anyhow::{Context, bail};
use serde_json::Value;

/// Where the server is and which token to use.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerFlags {
    /// The server's base URL, e.g. http://127.0.0.1:8000.
    #[arg(long, env = "WASMHOST_SERVER", default_value = "http://127.0.0.1:8000")]
    server: String,
    /// A bearer token `<token_id>:<token_secret>`.
    #[arg(long, env = "WASMHOST_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// A client bound to one server and token.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ServerFlags {
    /// Whether a token is configured (so a server is meant to be used).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }
}

impl Client {
    /// A client from the flags; fails when no token is given.
    pub fn new(flags: &ServerFlags) -> anyhow::Result<Self> {
        let token = flags
            .token
            .clone()
            .context("no token: set WASMHOST_TOKEN (the server writes one to <data-dir>/admin-token) or pass --token")?;
        Ok(Self {
            http: reqwest::Client::builder().build()?,
            base: flags.server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// A request to `/v1<path>` with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/v1{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends a request and returns its JSON (or `null` for an empty body); a non-2xx is an
    /// error carrying the server's `detail`.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let text = self.open(request).await?.text().await?;
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        })
    }

    /// Sends a request and returns the response to read (a stream); a non-2xx is an error
    /// carrying the server's `detail`.
    pub async fn open(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let detail = value
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_owned);
        bail!("{} ({status})", detail.unwrap_or_else(|| value.to_string()));
    }

    /// GET `/v1<path>`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// Finds an app by name or id.
    pub async fn find_app(&self, name_or_id: &str) -> anyhow::Result<Value> {
        let apps = self.get("/apps").await?;
        apps["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["app_id"] == name_or_id || a["name"] == name_or_id)
            .cloned()
            .with_context(|| format!("no app named {name_or_id:?}"))
    }
}
