#!/usr/bin/env python3
"""Soak: mixed traffic against a real `wasmhost server` for a while, minute by minute.

    bench/soak.py WASMHOST EXAMPLES_DIR [--minutes 10] [--concurrency 256]

Starts `WASMHOST server` on a free loopback port with a fresh data directory, deploys the
example components of every shape (typed endpoints GET and POST, ASGI, WSGI, a plain
wasi:http component, a web-server component, a callable function), then runs
CONCURRENCY clients over keep-alive connections, each sending requests across all of them
in turn, for MINUTES minutes. Every minute it prints requests, errors by status (and
socket errors by kind), p50/p99 latency, and the server's resident memory and open file
descriptors. Traffic goes to 127.0.0.1 only and stops by itself.

EXAMPLES_DIR is where the example guests were built
(examples/target/wasm32-wasip2/release after `cargo build --release --target
wasm32-wasip2 --workspace` in examples/).
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict

# (component file, app name, method, path, body or None)
WEB = [
    ("hello.wasm", "hello", "GET", "/", None),
    ("echo.wasm", "echo", "POST", "/", b'{"a": 1, "b": [1, 2, 3]}'),
    ("asgi_app.wasm", "asgi", "GET", "/items/7", None),
    ("wsgi_app.wasm", "wsgi", "GET", "/api/data", None),
    ("wasi_http_proxy.wasm", "proxy", "GET", "/", None),
    ("web-server.wasm", "websrv", "GET", "/", None),
]


def start_server(binary, data_dir):
    proc = subprocess.Popen(
        [binary, "server", "--data-dir", data_dir, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "WASMHOST_LOG": "warn,wasmhost=info"},
    )
    for line in proc.stdout:
        m = re.search(r"http://[^:/\s]+:(\d+)", line)
        if m:
            # Keep draining its output so it never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, int(m.group(1))
    raise SystemExit("the server printed no URL")


def deploy(binary, port, token, wasm, name):
    out = subprocess.run(
        [binary, "deploy", wasm, "--name", name],
        env={**os.environ, "WASMHOST_SERVER": f"http://127.0.0.1:{port}", "WASMHOST_TOKEN": token},
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"deploy {wasm} failed: {out.stdout}{out.stderr}")
    urls = re.findall(r"http://([^/:\s]+)", out.stdout + out.stderr)
    return urls


def api_get(port, token, path):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/v1" + path, headers={"Authorization": f"Bearer {token}"})
    body = conn.getresponse().read()
    conn.close()
    return json.loads(body)


def request_bytes(method, path, host, body, extra=""):
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def read_response(reader):
    """Reads one response; returns (status, keep_alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()
        return status, False
    return status, headers.get("connection", "").lower() != "close"


class Stats:
    def __init__(self):
        self.minutes = defaultdict(lambda: {"latencies": [], "outcomes": Counter()})

    def record(self, minute, outcome, latency_ms):
        m = self.minutes[minute]
        m["outcomes"][outcome] += 1
        if latency_ms is not None:
            m["latencies"].append(latency_ms)


async def client(port, targets, offset, deadline, started, stats):
    reader = writer = None
    i = offset
    while time.monotonic() < deadline:
        raw = targets[i % len(targets)]
        i += 1
        minute = int((time.monotonic() - started) // 60)
        t0 = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 30)
            writer.write(raw)
            await writer.drain()
            status, keep = await asyncio.wait_for(read_response(reader), 60)
            stats.record(minute, status, (time.perf_counter() - t0) * 1e3)
            if not keep:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
            stats.record(minute, type(e).__name__, None)
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()


def process_figures(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


async def run(args):
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(args.binary, os.path.join(tmp, "data"))
        try:
            token = open(os.path.join(tmp, "data", "admin-token")).read().strip()
            targets = []
            for wasm, name, method, path, body in WEB:
                hosts = deploy(args.binary, port, token, os.path.join(args.examples, wasm), name)
                targets.append(request_bytes(method, path, hosts[0], body))
            if args.no_calls:
                return await soak(args, proc, port, targets)
            deploy(args.binary, port, token, os.path.join(args.examples, "functions.wasm"), "fns")
            app_id = next(a["app_id"] for a in api_get(port, token, "/apps")["data"] if a["name"] == "fns")
            square = next(f["function_id"] for f in api_get(port, token, f"/apps/{app_id}/functions")["data"]
                          if f["name"] == "square")
            targets.append(request_bytes(
                "POST", f"/v1/functions/{square}/invocations", "127.0.0.1", b'{"args": [7]}',
                f"Authorization: Bearer {token}\r\n"))
            return await soak(args, proc, port, targets)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def soak(args, proc, port, targets):
    """Runs the clients and prints a line a minute; 0 if the server is still up."""
    print(f"server pid {proc.pid} on port {port}; {len(targets)} kinds of request; "
          f"{args.concurrency} clients for {args.minutes} min", flush=True)
    stats = Stats()
    started = time.monotonic()
    deadline = started + args.minutes * 60
    clients = [asyncio.create_task(client(port, targets, n, deadline, started, stats))
               for n in range(args.concurrency)]
    print(f"{'min':>3} {'requests':>9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>8} "
          f"{'RSS MiB':>8} {'fds':>5}  outcomes", flush=True)
    for minute in range(args.minutes):
        await asyncio.sleep(max(0, started + (minute + 1) * 60 - time.monotonic()))
        rss, fds = process_figures(proc.pid)
        m = stats.minutes[minute]
        lat = sorted(m["latencies"])
        total = sum(m["outcomes"].values())
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(m["outcomes"].items(), key=str))
        print(f"{minute + 1:>3} {total:>9} {total / 60:>7.0f} {percentile(lat, 0.5):>7.1f} "
              f"{percentile(lat, 0.99):>8.1f} {rss:>8} {fds:>5}  {outcomes}", flush=True)
    await asyncio.gather(*clients)
    alive = proc.poll() is None
    print(f"server still running: {alive}")
    return 0 if alive else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary")
    p.add_argument("examples")
    p.add_argument("--minutes", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--no-calls", action="store_true",
                   help="web endpoints only: no function calls (whose records the server keeps)")
    args = p.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
