//! Fuzzing entry (built only with `--cfg fuzzing`): the manifest decoder fed a manifest
//! made from arbitrary bytes, as a hostile guest's `describe` could return it.

use super::AppManifest;
use super::bindings::wasmhost::guest::types as raw;

/// Reads values from fuzzer bytes; past the end everything is zero or empty.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        first
    }
    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| (n << 8) | u64::from(self.byte()))
    }
    fn u32(&mut self) -> u32 {
        (0..4).fold(0, |n, _| (n << 8) | u32::from(self.byte()))
    }
    fn f64(&mut self) -> f64 {
        f64::from_bits(self.u64())
    }
    /// A string: one of `usual` (chosen by a byte), or arbitrary bytes read as UTF-8.
    fn text(&mut self, usual: &[&str]) -> String {
        let pick = usize::from(self.byte());
        if let Some(s) = usual.get(pick % (usual.len() + 1)) {
            return (*s).to_owned();
        }
        let len = usize::from(self.byte() % 48).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(taken).into_owned()
    }
    fn maybe<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        self.flag().then(|| f(self))
    }
    fn list<T>(&mut self, mut f: impl FnMut(&mut Self) -> T) -> Vec<T> {
        (0..self.byte() % 4).map(|_| f(self)).collect()
    }
}

const NAMES: &[&str] = &["app", "hello", "x", "a-b", ""];
const SCHEMAS: &[&str] = &[
    "{}",
    r#"{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}"#,
    "null",
];
const METHODS: &[&str] = &["GET", "post", "DELETE", "*"];
const SCHEDULES: &[&str] = &[
    "period(1s)",
    "cron(* * * * *)",
    "period(0s)",
    "cron(61 * * * *)",
];

fn scaling(r: &mut Reader<'_>) -> raw::Scaling {
    raw::Scaling {
        max_inputs: r.maybe(Reader::u32),
        min_containers: r.maybe(Reader::u32),
        max_containers: r.maybe(Reader::u32),
        buffer_containers: r.maybe(Reader::u32),
        scaledown_window_ms: r.maybe(Reader::u64),
        per_request: r.flag(),
    }
}

fn endpoint(r: &mut Reader<'_>) -> raw::EndpointInfo {
    raw::EndpointInfo {
        name: r.text(NAMES),
        kind: match r.byte() % 4 {
            0 => raw::EndpointKind::Function,
            1 => raw::EndpointKind::Method,
            2 => raw::EndpointKind::Asgi,
            _ => raw::EndpointKind::Wsgi,
        },
        method: r.text(METHODS),
        label: r.maybe(|r| r.text(NAMES)),
        docs: r.flag(),
        requires_proxy_auth: r.flag(),
        custom_domains: r.list(|r| r.text(&["example.com", "EXAMPLE.com."])),
        summary: r.maybe(|r| r.text(&[])),
        args_schema: r.text(SCHEMAS),
        result_schema: r.maybe(|r| r.text(SCHEMAS)),
        timeout_ms: r.maybe(Reader::u64),
        memory_mib: r.maybe(Reader::u32),
        gpu: r.maybe(|r| r.text(&["any", "T4"])),
        allowed_outbound_hosts: r.list(|r| r.text(OUTBOUND)),
        scaling: scaling(r),
        batching: r.maybe(batching),
    }
}

fn batching(r: &mut Reader<'_>) -> raw::Batching {
    raw::Batching {
        max_batch_size: r.u32(),
        wait_ms: r.u64(),
    }
}

fn function(r: &mut Reader<'_>) -> raw::FunctionInfo {
    raw::FunctionInfo {
        name: r.text(NAMES),
        summary: r.maybe(|r| r.text(&[])),
        args_schema: r.text(SCHEMAS),
        params: r.list(|r| r.text(&["x", "y"])),
        result_schema: r.maybe(|r| r.text(SCHEMAS)),
        retries: r.maybe(|r| raw::RetryPolicy {
            max_retries: r.u32(),
            backoff_coefficient: r.f64(),
            initial_delay_ms: r.u64(),
            max_delay_ms: r.u64(),
        }),
        timeout_ms: r.maybe(Reader::u64),
        memory_mib: r.maybe(Reader::u32),
        schedule: r.maybe(|r| r.text(SCHEDULES)),
        secrets: r.list(|r| r.text(NAMES)),
        volumes: r.list(|r| raw::VolumeMount {
            volume: r.text(NAMES),
            path: r.text(&["/data", "relative", "/"]),
        }),
        gpu: r.maybe(|r| r.text(&["any", " "])),
        allowed_outbound_hosts: r.list(|r| r.text(OUTBOUND)),
        batching: r.maybe(batching),
    }
}

/// Allow-list entries, good and bad.
const OUTBOUND: &[&str] = &[
    "https://api.example.com",
    "http://127.0.0.1:*",
    "*://*.example.com:8080",
    "example.com",
    "https://x/path",
];

/// Decodes a manifest built from `data`; `None` when the decoder refuses it.
pub fn fuzz_manifest(data: &[u8]) -> Option<AppManifest> {
    let mut r = Reader(data);
    let manifest = raw::Manifest {
        app: r.text(NAMES),
        sdk_version: r.text(&["0.1.0"]),
        endpoints: r.list(endpoint),
        functions: r.list(function),
        pre_init: r.flag(),
    };
    AppManifest::try_from(manifest).ok()
}
