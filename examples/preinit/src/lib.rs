//! A guest with about 50 ms of init work: a table of every prime below 1,500,000, built
//! by trial division in a `#[wasmhost::init]` function. The host runs it once at deploy
//! and serves a snapshot of the result, so no instance builds the table again.
//!
//! `GET /?n=97` → `{"n": 97, "prime": true, "primes_below": 24, "table_size": 114155,
//! "initialised_at_ns": ...}`; `initialised_at_ns` is when the table was built, the same
//! for every instance of a snapshot.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Serialize;
use wasmhost::Json;

const LIMIT: u32 = 1_500_000;

/// The prime table and when it was built.
struct Table {
    primes: Vec<u32>,
    built_at_ns: u128,
}

static TABLE: OnceLock<Table> = OnceLock::new();

/// Builds the prime table: the expensive start-up work a snapshot saves.
#[wasmhost::init]
fn build_table() {
    let mut primes: Vec<u32> = Vec::with_capacity(120_000);
    for n in 2..LIMIT {
        let is_prime = primes
            .iter()
            .take_while(|&&p| p * p <= n)
            .all(|&p| n % p != 0);
        if is_prime {
            primes.push(n);
        }
    }
    let built_at_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    println!("built {} primes", primes.len());
    let _ = TABLE.set(Table {
        primes,
        built_at_ns,
    });
}

/// What the table says about `n`.
#[derive(Serialize, JsonSchema)]
struct Answer {
    n: u32,
    /// `n` is prime (only known below the table's limit).
    prime: Option<bool>,
    /// Primes below `n` (up to the table's limit).
    primes_below: usize,
    /// Primes in the table.
    table_size: usize,
    /// When the table was built, in nanoseconds since the Unix epoch.
    initialised_at_ns: u128,
}

/// Looks `n` up in the prime table.
#[wasmhost::endpoint(method = "GET", docs = true)]
fn lookup(n: Option<u32>) -> Result<Json<Answer>, (u16, String)> {
    let table = TABLE
        .get()
        .ok_or((500, "the init work did not run".to_owned()))?;
    let n = n.unwrap_or(97);
    let below = table.primes.partition_point(|&p| p < n);
    Ok(Json(Answer {
        n,
        prime: (n < LIMIT).then(|| table.primes.get(below) == Some(&n)),
        primes_below: below,
        table_size: table.primes.len(),
        initialised_at_ns: table.built_at_ns,
    }))
}
