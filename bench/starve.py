#!/usr/bin/env python3
"""Latency of a healthy endpoint while guests spin on the same host.

Start `wasmhost run examples/.../misbehave.wasm --port PORT` first, then
`bench/starve.py PORT [SPINNERS] [REQUESTS]`: SPINNERS clients call the `spin` endpoint
(which spins until its 1 s timeout) over and over while one client times REQUESTS calls
to `ok`. Prints the healthy endpoint's latency percentiles, without and with the spinners.
"""

import http.client
import sys
import threading
import time


def call(port, host):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/", headers={"Host": host})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def measure(port, requests):
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        status = call(port, "misbehave-ok.localhost")
        times.append((time.perf_counter() - started) * 1e3)
        assert status == 200, status
        time.sleep(0.01)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    return f"p50 {pick(0.5):.1f} ms  p90 {pick(0.9):.1f} ms  p99 {pick(0.99):.1f} ms  max {times[-1]:.1f} ms"


def main():
    port = int(sys.argv[1])
    spinners = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    requests = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    call(port, "misbehave-ok.localhost")
    print(f"idle host:           {measure(port, requests)}")
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            call(port, "misbehave-spin.localhost")

    threads = [threading.Thread(target=spin) for _ in range(spinners)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    print(f"{spinners} guests spinning: {measure(port, requests)}")
    stop.set()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
