#!/usr/bin/env python3
"""Spawn throughput: durable `.spawn` calls through one `wasmhost server`.

Starts the release `wasmhost server` with a fresh data directory on this repository's disk
(where its store's commits are real `fdatasync`s), deploys the functions example, and
sends COUNT spawns of its `square` function from CONNECTIONS keep-alive connections at
once (each answered 202 only once its call is durable), then waits for every call to
finish. Prints, and writes to bench/RESULTS.md, the spawns accepted a second and the
calls finished a second (median of the rounds), with the number of `fdatasync`s the
store made a call where `strace` is there to count them.

    bench/spawns.py                 # builds what it needs (release)
    bench/spawns.py --no-build --count 5000 --connections 32

Not run in CI: it measures, it does not check.
"""

import argparse
import concurrent.futures
import http.client
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from density import deploy_all, start_server
from results_md import ROOT, load_average, script_args, write_section

MARK = "<!-- spawn rows: written by bench/spawns.py -->"
WASM = ROOT / "examples/target/wasm32-wasip2/release/functions.wasm"


def build():
    subprocess.run(["cargo", "build", "--release", "-p", "wasmhost", "--bin", "wasmhost"],
                   cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2", "-p", "functions"],
                   cwd=ROOT / "examples", check=True)


class Api:
    """The `/v1` API over one keep-alive connection per thread."""

    def __init__(self, port, token):
        self.port, self.local = port, threading.local()
        self.headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def call(self, method, path, body=None):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port)
        conn.request(method, f"/v1{path}", json.dumps(body) if body is not None else None, self.headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")


def square_id(api):
    _, apps = api.call("GET", "/apps")
    app = next(a for a in apps["data"] if a["name"] == "fn-app")
    _, functions = api.call("GET", f"/apps/{app['app_id']}/functions")
    return next(f["function_id"] for f in functions["data"] if f["name"] == "square")


def one_round(binary, count, connections, strace, extra):
    data = tempfile.mkdtemp(prefix="spawns-", dir=ROOT / "target")
    proc, port, _, _ = start_server(binary, data, extra)
    tracer = None
    try:
        token = Path(data, "admin-token").read_text().strip()
        deploy_all(port, token, WASM, ["fn-app"], 1)
        api = Api(port, token)
        square = square_id(api)

        def spawn(i):
            status, body = api.call("POST", f"/functions/{square}/spawn", {"args": [i]})
            if status != 202:
                raise SystemExit(f"spawn answered {status}: {body}")
            return body["call_id"]

        def finished(call_id):
            _, body = api.call("GET", f"/function-calls/{call_id}?wait=60")
            return body.get("status") == "success"

        with concurrent.futures.ThreadPoolExecutor(connections) as pool:
            list(pool.map(spawn, range(connections * 2)))  # warm the connections
            if strace:
                tracer = subprocess.Popen(
                    ["strace", "-f", "-c", "-e", "trace=fdatasync", "-p", str(proc.pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                time.sleep(1)
            started = time.perf_counter()
            ids = list(pool.map(spawn, range(count)))
            accepted = time.perf_counter() - started
            ok = sum(pool.map(finished, ids))
            done = time.perf_counter() - started
        if ok != count:
            raise SystemExit(f"{count - ok} of {count} calls did not succeed")
        syncs = None
        if tracer:
            tracer.terminate()
            _, err = tracer.communicate()
            for line in err.splitlines():
                if line.rstrip().endswith("fdatasync"):
                    syncs = int(line.split()[3]) / count
        return count / accepted, count / done, syncs
    finally:
        if tracer and tracer.poll() is None:
            tracer.kill()
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--database", help="an empty PostgreSQL database's URL: measure cluster mode's store instead "
                    "(one round, printed only; a database holds one data directory's sealed secrets)")
    args = script_args(ap, build)
    extra = ["--database", args.database] if args.database else []
    if args.database:
        args.rounds = 1
    load = load_average()
    rounds = []
    for _ in range(args.rounds):
        rounds.append(one_round(args.wasmhost, args.count, args.connections, False, extra))
        print(f"accepted {rounds[-1][0]:.0f}/s, finished {rounds[-1][1]:.0f}/s", flush=True)
    strace = shutil.which("strace") and not args.database
    syncs = one_round(args.wasmhost, args.count, args.connections, True, extra)[2] if strace else None
    accepted = statistics.median(r[0] for r in rounds)
    finished = statistics.median(r[1] for r in rounds)
    if syncs is not None:
        sync_text = f"{syncs:.2f}"
    else:
        sync_text = "– (PostgreSQL's own)" if args.database else "– (no strace)"
    body = f"""## Spawn throughput (bench/spawns.py)

`wasmhost server` with its data directory on this repository's disk; {args.count:,} spawns of
the functions example's `square` from {args.connections} connections at once, each answered
202 once its call is durable, then every call waited for. Medians of {args.rounds} rounds (load
average {load} before the run); the `fdatasync`s were counted by `strace` in a separate round.

| spawns accepted | calls finished | `fdatasync`s a call |
| ---: | ---: | ---: |
| {accepted:,.0f}/s | {finished:,.0f}/s | {sync_text} |
"""
    print(body)
    if not args.no_write and not args.database:
        write_section(MARK, body)


if __name__ == "__main__":
    main()
