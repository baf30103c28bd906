//! `wasmhost app history` and `wasmhost app rollback`.

use serde_json::{Value, json};

use super::client::{Client, ServerFlags};
use super::remote::text;

/// Prints an app's versions, newest first; `*` marks the one it serves.
pub(super) async fn history(app: &str, server: &ServerFlags) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let found = client.find_app(app).await?;
    let versions = client
        .get(&format!("/apps/{}/versions", text(&found["app_id"])))
        .await?;
    println!(
        "  {:<8} {:<14} {:<26} {:<28} NOTE",
        "VERSION", "DIGEST", "DEPLOYED AT", "BY"
    );
    for v in versions["data"].as_array().into_iter().flatten() {
        let digest = text(&v["digest"]);
        let by = match &v["deployed_by"] {
            Value::Null => "-".to_string(),
            d => format!("{} ({})", text(&d["name"]), text(&d["token_id"])),
        };
        let note = match v["rollback_of"].as_u64() {
            Some(n) => format!("rollback to {n}"),
            None => String::new(),
        };
        println!(
            "{} {:<8} {:<14} {:<26} {:<28} {note}",
            if v["current"] == true { "*" } else { " " },
            v["version"],
            digest.get(..12).unwrap_or(&digest),
            text(&v["created_at"]),
            by,
        );
    }
    Ok(())
}

/// Rolls an app back and says which version now serves.
pub(super) async fn rollback(
    app: &str,
    version: Option<u32>,
    server: &ServerFlags,
) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let found = client.find_app(app).await?;
    let request = client
        .request(
            reqwest::Method::POST,
            &format!("/apps/{}/rollback", text(&found["app_id"])),
        )
        .json(&json!({ "version": version }));
    let result = client.send(request).await?;
    let name = text(&result["name"]);
    if result["changed"] == false {
        eprintln!(
            "{name}: version {} already runs that component, nothing to do",
            result["version"]
        );
    } else {
        eprintln!(
            "rolled back {name}: version {} now serves {}",
            result["version"],
            version.map_or("the previous version".to_string(), |v| format!(
                "version {v}'s component"
            ))
        );
    }
    Ok(())
}
