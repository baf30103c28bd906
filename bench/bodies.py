#!/usr/bin/env python3
"""Resident memory of a host while large request bodies go through it, and after.

`bench/bodies.py WASMHOST ECHO_WASM [CLIENTS] [MIB]` starts `WASMHOST run ECHO_WASM`
(the `echo` example: a typed endpoint that returns the JSON it was sent) with a 2 s
scale-down window, sends CLIENTS concurrent bodies of MIB MiB each (one JSON string), and
prints the host's resident memory (VmRSS) before, at its peak, once every answer is in,
and after the instances have been retired. Defaults: 40 clients, 31 MiB (under the
32 MiB body limit).
"""

import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start(binary, wasm, cache):
    proc = subprocess.Popen(
        [binary, "run", wasm, "--port", "0", "--scaledown-window", "2s",
         "--cache-dir", cache, "--memory-limit", "512"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    for line in proc.stdout:
        m = re.search(r"http://[^:/\s]+:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, int(m.group(1))
    raise SystemExit("the host printed no URL")


def send(port, body, statuses):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    except OSError as e:
        statuses.append(type(e).__name__)
    finally:
        conn.close()


def main():
    binary, wasm = sys.argv[1], sys.argv[2]
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    mib = int(sys.argv[4]) if len(sys.argv) > 4 else 31
    body = b'"' + b"a" * (mib * 1024 * 1024 - 2) + b'"'
    with tempfile.TemporaryDirectory() as cache:
        proc, port = start(binary, wasm, cache)
        try:
            send(port, b'"warm"', [])
            time.sleep(0.5)
            before = rss_mib(proc.pid)
            peak = [before]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], rss_mib(proc.pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            statuses = []
            started = time.time()
            threads = [threading.Thread(target=send, args=(port, body, statuses)) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.time() - started
            answered = rss_mib(proc.pid)
            done.set()
            sampler.join()
            # Idle instances are retired after the 2 s window; allow a few ticks more.
            time.sleep(6)
            after = rss_mib(proc.pid)
            counts = {s: statuses.count(s) for s in set(statuses)}
            print(f"{clients} x {mib} MiB bodies in {took:.1f} s, answers {counts}")
            print(f"RSS MiB: before {before:.0f}, peak {peak[0]:.0f}, answered {answered:.0f}, "
                  f"after retirement {after:.0f}")
            print(f"peak over before: {(peak[0] - before) / (clients * mib):.2f}x the bodies' size")
        finally:
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()
