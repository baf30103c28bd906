//! Endpoints with access settings: one behind proxy-auth tokens, one on a custom domain
//! and a fixed label.

use schemars::JsonSchema;
use serde::Serialize;
use wasmhost::Json;

/// A secret only token holders may read.
#[derive(Serialize, JsonSchema)]
struct Secret {
    /// The secret.
    secret: String,
}

/// Answers only requests that carry `Wasmhost-Key` and `Wasmhost-Secret` headers.
#[wasmhost::endpoint(requires_proxy_auth = true)]
fn vault() -> Json<Secret> {
    Json(Secret {
        secret: "42".into(),
    })
}

/// Served on `api.example.test` and on the label `status-page` besides its generated name.
#[wasmhost::endpoint(custom_domains = ["api.example.test"], label = "status-page")]
fn status() -> &'static str {
    "all systems go"
}
