//! Endpoints that misbehave on purpose, for the host's failure tests.

use std::hint::black_box;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;
use wasmhost::{Json, Response};

/// Panics, so the guest traps.
#[wasmhost::endpoint]
fn trap() -> Json<bool> {
    panic!("misbehave: trap on purpose")
}

/// Never returns; the host's 1 s timeout must stop it.
#[wasmhost::endpoint(timeout = "1s")]
fn spin() -> Json<u64> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// How much `hog` allocated before its allocation failed.
#[derive(Serialize, JsonSchema)]
struct Hogged {
    allocated_mib: usize,
}

/// Allocates and touches 1 MiB blocks until allocation fails under its 32 MiB cap.
///
/// The failed allocation aborts, so the guest traps; with `?report=true` it answers
/// `{"allocated_mib": n}` instead.
#[wasmhost::endpoint(memory = 32)]
fn hog(report: Option<bool>) -> Json<Hogged> {
    const MIB: usize = 1 << 20;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let block = if report == Some(true) {
            let mut block = Vec::new();
            if block.try_reserve_exact(MIB).is_err() {
                return Json(Hogged {
                    allocated_mib: blocks.len(),
                });
            }
            block.resize(MIB, 1u8);
            block
        } else {
            vec![1u8; MIB]
        };
        blocks.push(black_box(block));
    }
}

/// Answers `{"ok": true}`.
#[derive(Serialize, JsonSchema)]
struct Fine {
    ok: bool,
}

/// Always succeeds.
#[wasmhost::endpoint]
fn ok() -> Json<Fine> {
    Json(Fine { ok: true })
}

/// A sum.
#[derive(Serialize, JsonSchema)]
struct Sum {
    sum: i64,
}

/// Adds two integers from the query; bad input gives a 422.
#[wasmhost::endpoint]
fn add(a: i64, b: i64) -> Json<Sum> {
    Json(Sum {
        sum: a.wrapping_add(b),
    })
}

/// Answers 418 with a JSON body and an `x-custom: yes` header.
#[wasmhost::endpoint]
fn teapot() -> (u16, Response) {
    let response = Response::new(200)
        .header("x-custom", "yes")
        .json(&json!({"teapot": true}));
    (418, response)
}

/// Requests this instance has served; traps when asked, so the host must discard it.
static VISITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts the requests this instance served (`?trap=true` panics after counting).
#[wasmhost::endpoint]
fn visits(trap: Option<bool>) -> Json<u64> {
    let n = VISITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if trap == Some(true) {
        panic!("misbehave: trap after {n} visits");
    }
    Json(n)
}

/// Like `visits`, but declared with per-request isolation: every request sees a fresh
/// instance, so it always answers 1.
#[wasmhost::endpoint(isolation = "per-request", max_containers = 2)]
fn isolated_visits() -> Json<u64> {
    Json(VISITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
}
