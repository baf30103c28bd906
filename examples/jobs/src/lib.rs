//! Seed 000's job queue and the rest of the function features: spawn from one endpoint,
//! poll from another (202 while pending), schedules, a secret and a volume.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};
use wasmhost::functions::{self, Error, FunctionCall};
use wasmhost::{Json, Response};

/// The id of a spawned job.
#[derive(Serialize, JsonSchema)]
struct Submitted {
    call_id: String,
}

/// Spawns `long_job(n)` and answers `{"call_id": ...}` at once.
#[wasmhost::endpoint(method = "POST")]
fn submit(n: i64) -> Result<Json<Submitted>, Response> {
    match functions::spawn("long_job", (n,)) {
        Ok(call) => Ok(Json(Submitted {
            call_id: call.id().to_owned(),
        })),
        Err(err) => Err(Response::error(500, err.to_string())),
    }
}

/// The job's state: 202 `{"status": "pending"}`, 200 `{"result": ...}`,
/// 500 `{"status": "failure", "error": ...}`, or 404 for an unknown call id.
#[wasmhost::endpoint(method = "GET")]
fn result(call_id: String) -> (u16, Json<Value>) {
    match FunctionCall::from_id(call_id).get::<Value>(Duration::from_millis(100)) {
        Ok(None) => (202, Json(json!({ "status": "pending" }))),
        Ok(Some(result)) => (200, Json(json!({ "result": result }))),
        Err(Error::Failed(message)) => {
            (500, Json(json!({ "status": "failure", "error": message })))
        }
        Err(Error::Host(message)) => (404, Json(json!({ "detail": message }))),
        Err(err) => (500, Json(json!({ "detail": err.to_string() }))),
    }
}

/// Takes a second, then returns `n * 2`.
#[wasmhost::function]
fn long_job(n: i64) -> i64 {
    std::thread::sleep(Duration::from_secs(1));
    n.wrapping_mul(2)
}

/// Seconds since the Unix epoch, for the scheduled runs' results.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs every second while the app is deployed.
#[wasmhost::function(schedule = "period(1s)")]
fn tick() -> String {
    format!("tick at {}", now())
}

/// Runs every minute while the app is deployed.
#[wasmhost::function(schedule = "cron(* * * * *)")]
fn cron_tick() -> String {
    format!("cron tick at {}", now())
}

/// Returns `GREETING` from the secret `demo-secret`.
#[wasmhost::function(secrets = ["demo-secret"])]
fn whoami() -> Result<String, String> {
    std::env::var("GREETING").map_err(|_| "GREETING is not set (secret `demo-secret`)".to_owned())
}

/// Writes `text` to `/data/<name>` on the volume `notes`.
#[wasmhost::function(volumes = ["notes:/data"])]
fn write_note(name: String, text: String) -> Result<(), String> {
    std::fs::write(format!("/data/{name}"), text).map_err(|e| format!("cannot write {name}: {e}"))
}

/// Reads `/data/<name>` from the volume `notes`.
#[wasmhost::function(volumes = ["notes:/data"])]
fn read_note(name: String) -> Result<String, String> {
    std::fs::read_to_string(format!("/data/{name}")).map_err(|e| format!("cannot read {name}: {e}"))
}

/// What happened to one attempt to leave the volume.
#[derive(Serialize, JsonSchema)]
struct Attempt {
    /// Whether the read was refused.
    refused: bool,
    /// The error, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// How many bytes were read, when not refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<usize>,
}

/// Tries to read files outside the volume; every attempt should be refused.
#[wasmhost::function(volumes = ["notes:/data"])]
fn escape() -> BTreeMap<String, Attempt> {
    ["/data/../../etc/passwd", "/etc/passwd"]
        .into_iter()
        .map(|path| {
            let attempt = match std::fs::read(path) {
                Ok(bytes) => Attempt {
                    refused: false,
                    error: None,
                    bytes: Some(bytes.len()),
                },
                Err(err) => Attempt {
                    refused: true,
                    error: Some(err.to_string()),
                    bytes: None,
                },
            };
            (path.to_owned(), attempt)
        })
        .collect()
}
