#!/usr/bin/env python3
"""Density: 10,000 deployed functions on one `wasmhost server`, with a loaded-code budget.

Starts the release `wasmhost server` on a free loopback port with a fresh data directory
and `--max-loaded-components`, deploys the hello example COUNT times under distinct app
names (the same component bytes each time: one component file and one cached `.cwasm`
on disk; each app still loads, maps and evicts its own copy of the code), then calls every
app once. Prints and writes to bench/RESULTS.md: the server's resident memory (VmRSS,
VmHWM) after the deploys, after calling them all and after a restart; the first byte of an
app whose code was evicted (on an open connection, host up) next to that of a loaded one;
and the restart with COUNT apps (spawn → listening, and → first byte).

    bench/density.py                         # builds what it needs (release), ~5 minutes
    bench/density.py --count 1000 --no-build

Not run in CI: it measures, it does not check.
"""

import argparse
import concurrent.futures
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from results_md import ROOT, load_average, script_args, write_section

MARK = "<!-- density rows: written by bench/density.py -->"


def start_server(binary, data_dir, extra):
    started = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "server", "--data-dir", data_dir, "--port", "0", "--public-metrics", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "WASMHOST_LOG": "warn"},
    )
    for line in proc.stdout:
        m = re.search(r"http://[^:/\s]+:(\d+)", line)
        if m:
            listening = time.perf_counter() - started
            # Keep draining its output so it never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, int(m.group(1)), listening, started
    raise SystemExit("the server printed no URL")


def memory(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    kib = lambda key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1))
    return kib("VmRSS") / 1024, kib("VmHWM") / 1024


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid, seconds=5):
    """The share of a core a process used over `seconds`."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def full_host(port, token, wasm, count):
    """On a host with `count` apps: ten more deploys, and the API's list of every web
    endpoint."""
    more = []
    for i in range(10):
        started = time.perf_counter()
        deploy_all(port, token, wasm, [f"more-{i}"], 1)
        more.append(time.perf_counter() - started)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/web-endpoints",
                                 headers={"authorization": f"Bearer {token}"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        r.read()
    listing = time.perf_counter() - started
    return [
        (f"one more deploy onto {count:,} apps (median of 10)", f"{ms(statistics.median(more))} ms"),
        ("`GET /v1/web-endpoints` (every endpoint)", f"{ms(listing)} ms"),
    ]


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def deploy_all(port, token, wasm, names, workers):
    body = Path(wasm).read_bytes()

    def one(name):
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/deployments?name={name}", data=body, method="POST",
            headers={"authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req) as r:
            if r.status != 201:
                raise SystemExit(f"deploy {name}: {r.status}")

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for i, _ in enumerate(pool.map(one, names)):
            if (i + 1) % 1000 == 0:
                print(f"  deployed {i + 1}", file=sys.stderr)


class Conn:
    """One keep-alive connection; `get` returns (seconds to the first byte, status, body)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get(self, host, path):
        request = f"GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode()
        started = time.perf_counter()
        self.sock.sendall(request)
        data = self.sock.recv(65536)
        first = time.perf_counter() - started
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(65536)
        head, rest = data.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        return first, int(head.split()[1]), rest[:length].decode()


def host_of(name):
    return f"main--{name}-hello.localhost"


def call(conn, name):
    first, status, body = conn.get(host_of(name), f"/?name={name}")
    if status != 200 or f"Hello, {name}!" not in body:
        raise SystemExit(f"{name}: {status} {body}")
    return first


def ms(seconds):
    return f"{seconds * 1e3:.2f}"


def build():
    subprocess.run(["cargo", "build", "--release", "-p", "wasmhost", "--bin", "wasmhost"],
                   cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2", "-p", "hello"],
                   cwd=ROOT / "examples", check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--max-loaded", type=int, default=64, help="--max-loaded-components")
    ap.add_argument("--deployers", type=int, default=4, help="uploads at once")
    args = script_args(ap, build)
    load_before = load_average()
    binary = args.wasmhost
    wasm = str(ROOT / "examples/target/wasm32-wasip2/release/hello.wasm")
    names = [f"fn-{i:05}" for i in range(args.count)]
    extra = ["--max-loaded-components", str(args.max_loaded)]
    with tempfile.TemporaryDirectory() as data:
        proc, port, _, _ = start_server(binary, data, extra)
        rss_empty, _ = memory(proc.pid)
        token = Path(data, "admin-token").read_text().strip()
        started = time.perf_counter()
        deploy_all(port, token, wasm, names, args.deployers)
        deploy_s = time.perf_counter() - started
        rss_deployed, _ = memory(proc.pid)
        conn = Conn(port)
        started = time.perf_counter()
        cold = [call(conn, name) for name in names]
        calls_s = time.perf_counter() - started
        rss_called, hwm_called = memory(proc.pid)
        # The last ones called are loaded; the first ones were evicted long ago.
        loaded = [call(conn, name) for name in names[-min(args.max_loaded, 20):]]
        evicted = [call(conn, name) for name in names[:20]]
        m = metrics(port)
        full = full_host(port, token, wasm, args.count)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)

        proc, port, restart_s, spawned = start_server(binary, data, extra)
        conn = Conn(port)
        after_restart = call(conn, names[len(names) // 2])
        spawn_to_first = time.perf_counter() - spawned
        rss_restart, _ = memory(proc.pid)
        idle = idle_cpu(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)

    count = args.count
    rows = [
        ("apps deployed", f"{count:,} (`hello.wasm` under {count:,} names; --max-loaded-components {args.max_loaded})"),
        ("deploying them", f"{deploy_s:.1f} s ({deploy_s / count * 1e3:.2f} ms each, {args.deployers} uploads at once)"),
        ("server RSS: empty → deployed → all called once (peak)",
         f"{rss_empty:.0f} → {rss_deployed:.0f} → {rss_called:.0f} MiB ({hwm_called:.0f} MiB)"),
        ("resident per deployed app (all called once)", f"{(rss_called - rss_empty) * 1024 / count:.0f} KiB"),
        ("calling each once (its code loaded on the call, another evicted)",
         f"{calls_s:.1f} s; first byte p50 {ms(statistics.median(cold))} ms, "
         f"p99 {ms(sorted(cold)[int(len(cold) * 0.99)])} ms"),
        ("first byte, code evicted (host up, open connection; median of 20)", f"{ms(statistics.median(evicted))} ms"),
        ("first byte, code loaded (median of 20)", f"{ms(statistics.median(loaded))} ms"),
        ("code loads / evictions / loaded (`/metrics`)",
         f"{m.get('wasmhost_code_loads_total', 0):.0f} / {m.get('wasmhost_code_evictions_total', 0):.0f} / "
         f"{m.get('wasmhost_code_loaded', 0):.0f}"),
        *full,
        (f"restart with {count:,} apps: spawn → listening", f"{restart_s * 1e3:.0f} ms"),
        ("restart: spawn → first byte of one app", f"{spawn_to_first * 1e3:.0f} ms (that call: {ms(after_restart)} ms)"),
        ("server RSS after the restart and one call", f"{rss_restart:.0f} MiB"),
        ("server CPU while idle after that (5 s)", f"{idle * 100:.1f} % of a core"),
    ]
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    body = "\n".join([
        "## Density: many deployed functions (bench/density.py)",
        "",
        f"{date}, wasmhost {commit}, {os.cpu_count()} cores, load average {load_before} before "
        f"the run and {load_average()} after it. Compiled code is loaded on an app's "
        "first call and evicted least recently used first past the budget; an app keeps its "
        "manifest, routes and metrics. All apps deploy the same bytes (one `.cwasm` on disk, "
        "so the page cache holds one copy), but every app maps and links its own.",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in rows],
    ])
    print(body)
    if not args.no_write:
        write_section(MARK, body)


if __name__ == "__main__":
    main()
