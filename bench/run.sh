#!/usr/bin/env bash
# Builds what the benchmark needs and runs it once: wasmhost (release), the example guests,
# the benchmark itself, and — outside CI — wasmtime-cli 48.0.8 as the peer, when
# `wasmtime --version` is missing or another version. Writes bench/RESULTS.md.
#
#   bench/run.sh                      # the full run (~2 minutes once built)
#   bench/run.sh --duration 2s        # any wasmhost-bench option is passed through
set -euo pipefail
cd "$(dirname "$0")/.."

WASMTIME_VERSION=48.0.8

if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2 >/dev/null
fi
echo "building the example guests ..." >&2
(cd examples && cargo build --release --target wasm32-wasip2 -p hello -p wasi-http-proxy -p wasi-http-p3 -p preinit)
echo "building wasmhost and wasmhost-bench (release) ..." >&2
cargo build --release -p wasmhost --bin wasmhost
cargo build --release -p wasmhost-bench

installed=$(wasmtime --version 2>/dev/null || true)
if [[ "$installed" != *"$WASMTIME_VERSION"* ]]; then
    if [[ "${CI:-}" == "true" ]]; then
        echo "CI: not installing wasmtime-cli; the wasmtime serve rows are skipped" >&2
    else
        echo "installing wasmtime-cli $WASMTIME_VERSION (found: ${installed:-none}) ..." >&2
        cargo install --locked wasmtime-cli --version "$WASMTIME_VERSION"
    fi
fi

exec target/release/wasmhost-bench "$@"
