//! The records the store keeps, serialised as JSON values in redb tables.

use serde::{Deserialize, Serialize};

use crate::manifest::AppManifest;

/// Life-cycle state of an app (Modal's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    /// Lives while its `serve` session does.
    Ephemeral,
    /// Serving its current version.
    Deployed,
    /// Stopped: kept, but not served.
    Stopped,
}

/// An app: a named, versioned deployment of one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Stable id (`ap-…`).
    pub app_id: String,
    /// DNS-safe name, unique within workspace and environment.
    pub name: String,
    /// Workspace it belongs to.
    pub workspace: String,
    /// Environment it belongs to.
    pub environment: String,
    /// Current state.
    pub state: AppState,
    /// Current version (0 before the first deploy).
    pub version: u32,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Last change, RFC 3339.
    pub updated_at: String,
}

/// One deployed version of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// 1, 2, …
    pub version: u32,
    /// sha256 of the component; the file is `components/<digest>.wasm`.
    pub digest: String,
    /// What the component described at deploy.
    pub manifest: AppManifest,
    /// Deploy time, RFC 3339.
    pub created_at: String,
    /// The token that deployed it (none for `run`/`serve` and versions made before this
    /// was recorded).
    #[serde(default)]
    pub deployed_by: Option<Deployer>,
    /// For a rollback: the earlier version this one serves again.
    #[serde(default)]
    pub rollback_of: Option<u32>,
}

/// Who deployed a version: the token used, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployer {
    /// The token's public id.
    pub token_id: String,
    /// The token's name.
    pub name: String,
}

/// Whether a function is a web endpoint or a callable function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    /// A web endpoint.
    #[default]
    Web,
    /// A callable function (`.remote`, `.spawn`, `.map`).
    Function,
}

/// A function of an app; its id survives redeploys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// Web endpoint or callable function.
    #[serde(default)]
    pub kind: FunctionKind,
    /// Stable id (`fu-…`); also the web endpoint's id.
    pub function_id: String,
    /// The app it belongs to.
    pub app_id: String,
    /// Function name in the manifest.
    pub name: String,
    /// Custom URL label set through the API (overrides the manifest's).
    pub custom_label: Option<String>,
    /// Whether the current version still has it.
    pub active: bool,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Only the `Wasmhost-Key`/`Wasmhost-Secret` pair of proxy-auth web endpoints.
    ProxyAuth,
    /// Also the `/v1` API's reads and function calls (invocations, spawn, map, results).
    Invoke,
    /// Also deploys, app changes and volumes.
    Deploy,
    /// Everything, tokens and secrets included (tokens made before scopes existed).
    #[default]
    Admin,
}

impl Scope {
    /// The name used in the API and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ProxyAuth => "proxy-auth",
            Scope::Invoke => "invoke",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "proxy-auth" => Ok(Scope::ProxyAuth),
            "invoke" => Ok(Scope::Invoke),
            "deploy" => Ok(Scope::Deploy),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {other:?}: use admin, deploy, invoke or proxy-auth"
            )),
        }
    }
}

/// An API token; the secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id (`tk-…`).
    pub token_id: String,
    /// Human name.
    pub name: String,
    /// What it may do.
    #[serde(default)]
    pub scope: Scope,
    /// sha256(salt ‖ secret), hex.
    pub secret_hash: String,
    /// Random per-token salt, hex.
    pub salt: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// A freshly created token: the only time its secret is known.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToken {
    /// Public id.
    pub token_id: String,
    /// The secret, shown once.
    pub token_secret: String,
    /// Name given at creation.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
}

impl NewToken {
    /// The `Authorization: Bearer` value: `<token_id>:<token_secret>`.
    pub fn bearer(&self) -> String {
        format!("{}:{}", self.token_id, self.token_secret)
    }
}

/// The current time as RFC 3339 (UTC, milliseconds; sorts as text).
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
