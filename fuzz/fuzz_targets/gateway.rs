//! The gateway's parsing of what any client sends: the Host name (from the URI or the
//! `Host` header) and its route lookup, the `/v1` route table, and the check of request
//! heads for bare line feeds, read in arbitrary pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhost::fuzzing::{fuzz_heads, fuzz_host, fuzz_route};

fuzz_target!(|data: &[u8]| {
    // Three parts split at the first two 0xFF bytes: URI, Host header, the rest.
    let mut parts = data.splitn(3, |b| *b == 0xff);
    let uri = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default();
    fuzz_host(uri, host);
    if let Ok(path) = std::str::from_utf8(uri) {
        let method = host.get(..host.len().min(8)).unwrap_or_default();
        fuzz_route(method, path);
    }
    let cuts: Vec<usize> = host.iter().map(|b| usize::from(*b)).collect();
    fuzz_heads(rest, &cuts);
    fuzz_heads(data, &cuts);
});
