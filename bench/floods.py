#!/usr/bin/env python3
"""An endpoint's throughput while clients flood the same host's API.

Starts the release `wasmhost server` (on the embedded store, or with `--database URL` on
PostgreSQL), deploys the hello example and loads its endpoint with `wrk -t1 -c32`: alone,
then while a second `wrk -t1 -c16` sends the API requests with a token that is not valid,
then while it lists the apps with a valid token. Prints, and writes to bench/RESULTS.md,
the endpoint's requests a second and p99, the flood's requests a second, and the share of
the machine's CPU left idle meanwhile (a host whose threads wait on its store leaves it
idle while its endpoints queue).

    bench/floods.py --database postgres://postgres@127.0.0.1:5432/floods
    bench/floods.py --no-build --rounds 3

Not run in CI: it measures, it does not check. wrk is Debian's (`apt-get install wrk`).
"""

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from density import start_server
from results_md import ROOT, load_average, script_args, write_section

WASM = ROOT / "examples/target/wasm32-wasip2/release/hello.wasm"
FLOODS = {
    "alone": None,
    "wrong tokens": ("/v1/apps", "tk-nope:wrong"),
    "valid token, listing apps": ("/v1/apps", None),
}


def build():
    subprocess.run(["cargo", "build", "--release", "-p", "wasmhost", "--bin", "wasmhost"],
                   cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2", "-p", "hello"],
                   cwd=ROOT / "examples", check=True)


def wrk(args, seconds, connections):
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *args],
                         capture_output=True, text=True, check=True).stdout
    unit = {"us": 1e-3, "ms": 1, "s": 1e3}
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p99_ms": float(p99.group(1)) * unit[p99.group(2)]}


def idle_share(seconds):
    def ticks():
        return [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    before = ticks()
    time.sleep(seconds)
    after = ticks()
    delta = [b - a for a, b in zip(before, after)]
    return delta[3] / sum(delta)


def one_round(port, host, token, seconds):
    endpoint = ["-H", f"Host: {host}", f"http://127.0.0.1:{port}/?name=a"]
    rows = {}
    for name, flood in FLOODS.items():
        if flood is None:
            rows[name] = {**wrk(endpoint, seconds, 32), "flood_rps": None, "idle": None}
            continue
        path, bearer = flood
        flood_out = {}
        flooding = threading.Thread(target=lambda: flood_out.update(wrk(
            ["-H", f"authorization: Bearer {bearer or token}", f"http://127.0.0.1:{port}{path}"],
            seconds + 2, 16)))
        flooding.start()
        time.sleep(1)
        idle = {}
        sampler = threading.Thread(target=lambda: idle.update(share=idle_share(seconds - 1)))
        sampler.start()
        row = wrk(endpoint, seconds, 32)
        sampler.join()
        flooding.join()
        rows[name] = {**row, "flood_rps": flood_out["rps"], "idle": idle["share"]}
    return rows


def deploy(port, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/deployments?name=hello",
                                 data=WASM.read_bytes(), method="POST",
                                 headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as r:
        body = json.dumps(json.load(r))
    return re.search(r"https?://([^/\":]+)", body).group(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database", help="a PostgreSQL URL (its database is used as it is)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = script_args(ap, build)
    extra = ["--database", args.database] if args.database else []
    rounds = []
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as data:
        proc, port, _, _ = start_server(args.wasmhost, data, extra)
        try:
            token = Path(data, "admin-token").read_text().strip()
            host = deploy(port, token)
            for i in range(args.rounds):
                rounds.append(one_round(port, host, token, args.seconds))
                print(f"round {i + 1}: {json.dumps(rounds[-1])}", flush=True)
        finally:
            proc.terminate()
            proc.wait()
    store = "PostgreSQL" if args.database else "the embedded store"
    lines = [
        f"## An endpoint beside a flood of API requests, {store} (bench/floods.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {store}, load average "
        f"{load_average()} after the run; `wrk -t1 -c32` on the hello endpoint, the flood "
        f"`wrk -t1 -c16` on the API; medians of {args.rounds} rounds of {args.seconds} s.",
        "",
        "| endpoint's load | endpoint req/s | endpoint p99 ms | flood req/s | CPU idle |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in FLOODS:
        med = {k: statistics.median(r[name][k] for r in rounds) if rounds[0][name][k] is not None
               else None for k in ("rps", "p99_ms", "flood_rps", "idle")}
        flood = "–" if med["flood_rps"] is None else f"{med['flood_rps']:.0f}"
        idle = "–" if med["idle"] is None else f"{med['idle']:.0%}"
        lines.append(f"| {name} | {med['rps']:.0f} | {med['p99_ms']:.2f} | {flood} | {idle} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        kind = "postgres" if args.database else "embedded"
        write_section(f"<!-- flood rows ({kind}): written by bench/floods.py -->", body)


if __name__ == "__main__":
    main()
