//! `wasmhost call`, `spawn`, `call-result`, `map`: Modal's `.remote`, `.spawn`,
//! `FunctionCall.get` and `.map` from the command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::client::{Client, ServerFlags};

/// A function named `app.function`.
#[derive(Debug, Clone)]
pub struct Target {
    app: String,
    function: String,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('.') {
            Some((a, f)) if !a.is_empty() && !f.is_empty() => Ok(Target {
                app: a.to_owned(),
                function: f.to_owned(),
            }),
            _ => Err(format!("expected <app>.<function>, got {s:?}")),
        }
    }
}

/// Arguments of a call.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// `<app>.<function>`.
    target: Target,
    /// Positional arguments as a JSON list, e.g. '[7]'.
    #[arg(long)]
    args: Option<String>,
    /// Keyword arguments as a JSON object, e.g. '{"x": 7}'.
    #[arg(long)]
    kwargs: Option<String>,
    #[command(flatten)]
    server: ServerFlags,
}

/// Arguments of `call-result`.
#[derive(Debug, clap::Args)]
pub struct ResultArgs {
    /// The call id printed by `spawn`.
    call_id: String,
    /// Wait until the call is over.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    server: ServerFlags,
}

/// Arguments of `map`.
#[derive(Debug, clap::Args)]
pub struct MapArgs {
    /// `<app>.<function>`.
    target: Target,
    /// A JSON Lines file: one input per line (a list of positional args, an object of kwargs, or one value).
    #[arg(long)]
    inputs: PathBuf,
    /// Print each result as it completes (with its index) instead of all in order at the end.
    #[arg(long)]
    stream: bool,
    #[command(flatten)]
    server: ServerFlags,
}

/// Builds `{"args": [...], "kwargs": {...}}` from the flags.
pub fn input(args: Option<&str>, kwargs: Option<&str>) -> anyhow::Result<Value> {
    let mut input = json!({});
    if let Some(a) = args {
        let v: Value = serde_json::from_str(a).context("--args is not JSON")?;
        input["args"] = if v.is_array() { v } else { json!([v]) };
    }
    if let Some(k) = kwargs {
        let v: Value = serde_json::from_str(k).context("--kwargs is not JSON")?;
        if !v.is_object() {
            bail!("--kwargs must be a JSON object");
        }
        input["kwargs"] = v;
    }
    Ok(input)
}

async fn function_id(client: &Client, target: &Target) -> anyhow::Result<String> {
    let app = client.find_app(&target.app).await?;
    let functions = client
        .get(&format!(
            "/apps/{}/functions",
            app["app_id"].as_str().unwrap_or_default()
        ))
        .await?;
    functions["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == target.function.as_str())
        .and_then(|f| f["function_id"].as_str().map(str::to_owned))
        .with_context(|| format!("app {:?} has no function {:?}", target.app, target.function))
}

/// Prints a finished call's result (stdout) or error (stderr, then fails).
fn finish(call: &Value) -> anyhow::Result<()> {
    match call["status"].as_str() {
        Some("success") => {
            println!("{}", call["result"]);
            Ok(())
        }
        Some(status) => {
            let attempts = call["attempts"].as_array().map_or(0, Vec::len);
            bail!(
                "call {} ended {status} after {attempts} attempt(s): {}",
                call["call_id"].as_str().unwrap_or_default(),
                call["error"]
            )
        }
        None => bail!("unexpected answer: {call}"),
    }
}

/// POSTs the call's input to `/functions/<id>/<action>` and returns the answer.
async fn post_call(args: &CallArgs, action: &str) -> anyhow::Result<Value> {
    let client = Client::new(&args.server)?;
    let id = function_id(&client, &args.target).await?;
    let body = input(args.args.as_deref(), args.kwargs.as_deref())?;
    let request = client
        .request(reqwest::Method::POST, &format!("/functions/{id}/{action}"))
        .json(&body);
    client.send(request).await
}

pub(super) async fn call(args: CallArgs) -> anyhow::Result<()> {
    finish(&post_call(&args, "invocations").await?)
}

pub(super) async fn spawn(args: CallArgs) -> anyhow::Result<()> {
    let call = post_call(&args, "spawn").await?;
    println!("{}", call["call_id"].as_str().unwrap_or_default());
    Ok(())
}

pub(super) async fn call_result(args: ResultArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    loop {
        let path = format!(
            "/function-calls/{}{}",
            args.call_id,
            if args.wait { "?wait=30" } else { "" }
        );
        let call = client.get(&path).await?;
        match call["status"].as_str() {
            Some("pending" | "running") if args.wait => continue,
            Some("pending" | "running") => {
                println!("{}", call["status"].as_str().unwrap_or_default());
                return Ok(());
            }
            _ => return finish(&call),
        }
    }
}

pub(super) async fn map(args: MapArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let id = function_id(&client, &args.target).await?;
    let text = std::fs::read_to_string(&args.inputs)
        .with_context(|| format!("cannot read {}", args.inputs.display()))?;
    let inputs = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str::<Value>(l).with_context(|| format!("line {} is not JSON", n + 1))
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;
    let request = client
        .request(reqwest::Method::POST, &format!("/functions/{id}/map"))
        .json(&json!({ "inputs": inputs, "stream": args.stream }))
        .timeout(Duration::from_secs(24 * 3600));
    if !args.stream {
        let out = client.send(request).await?;
        for r in out["results"].as_array().into_iter().flatten() {
            println!("{r}");
        }
        let errors = out["errors"].as_array().cloned().unwrap_or_default();
        for e in &errors {
            eprintln!("input {} failed: {}", e["index"], e["error"]);
        }
        if !errors.is_empty() {
            bail!("{} of {} inputs failed", errors.len(), inputs.len());
        }
        return Ok(());
    }
    let mut response = request.send().await.context("cannot reach the server")?;
    if !response.status().is_success() {
        bail!("map failed: {}", response.text().await.unwrap_or_default());
    }
    let mut buffer = String::new();
    let mut failures = 0;
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            if event.starts_with("event: done") {
                break;
            }
            if v["status"] == "success" {
                println!("{}\t{}", v["index"], v["result"]);
            } else {
                failures += 1;
                eprintln!("input {} failed: {}", v["index"], v["error"]);
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} inputs failed", inputs.len());
    }
    Ok(())
}
