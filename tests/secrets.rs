//! Secrets sealed at rest on a real server: a restart reads them and a function still gets
//! them; the value never appears in `state.redb`; a wrong or missing key stops the server
//! at start with a message naming the key file, instead of serving empty secrets.

mod common;

use common::{Api, admin_token, example, server, wasmhost, wasmhost_remote};
use serde_json::Value;

const VALUE: &str = "sealed-greeting-7f3a";

/// `wasmhost server` on `data` run to its end: (exit code, output) of a start that fails.
fn failed_start(data: &std::path::Path) -> (i32, String) {
    let data = data.display().to_string();
    wasmhost(&["server", "--data-dir", &data, "--port", "0"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_secrets_survive_a_restart_and_a_wrong_key_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let mut srv = server(&data, &[]);
        let token = admin_token(&data);
        let greeting = format!("GREETING={VALUE}");
        let (code, out) = wasmhost_remote(
            &srv,
            &token,
            &["secret", "create", "demo-secret", &greeting],
        );
        assert_eq!(code, 0, "{out}");
        assert!(srv.terminate().is_some(), "the server did not stop");
    }
    let state = std::fs::read(data.join("state.redb")).unwrap();
    assert!(!state.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()));

    // A restart opens them with the key, and a function gets the value.
    {
        let mut srv = server(&data, &[]);
        let token = admin_token(&data);
        let wasm = example("jobs").display().to_string();
        let (code, out) = wasmhost_remote(&srv, &token, &["deploy", &wasm, "--name", "jobs"]);
        assert_eq!(code, 0, "{out}");
        let api = Api {
            host: &srv,
            token: token.clone(),
        };
        let app_id = api.app_id("jobs").await;
        let functions = api.get(&format!("/apps/{app_id}/functions")).await;
        let whoami = functions["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "whoami")
            .expect("whoami is deployed")["function_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, result) = api
            .call(
                reqwest::Method::POST,
                &format!("/functions/{whoami}/invocations"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["result"], Value::String(VALUE.into()), "{result}");
        assert!(srv.terminate().is_some(), "the server did not stop");
    }

    // Another key: the server refuses to start and says which file to restore.
    let key_path = data.join("secrets.key");
    let key = std::fs::read(&key_path).unwrap();
    std::fs::write(&key_path, format!("{}\n", "ab".repeat(32))).unwrap();
    let (code, out) = failed_start(&data);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("does not open with the key"), "{out}");
    assert!(out.contains("secrets.key"), "{out}");

    // No key at all: refused too, rather than making a new one.
    std::fs::remove_file(&key_path).unwrap();
    let (code, out) = failed_start(&data);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("is missing"), "{out}");
    assert!(!key_path.exists(), "a new key was made over sealed secrets");

    // The right key back: the server starts again.
    std::fs::write(&key_path, key).unwrap();
    let srv = server(&data, &[]);
    let token = admin_token(&data);
    let (code, out) = wasmhost_remote(&srv, &token, &["secret", "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("demo-secret"), "{out}");
}
