#!/usr/bin/env python3
"""Cluster failover: three `wasmhost server` hosts on one PostgreSQL, one killed mid-load.

    bench/cluster.py WASMHOST EXAMPLES_DIR [--calls 1000] [--seconds 30] [--web-clients 8]
                     [--database postgres://...]

Starts a PostgreSQL (initdb into a temp dir, `postgres` on a free loopback port, as
`nobody` when run as root) unless --database names one, then three hosts on it sharing
one secrets key, and deploys examples/functions through the first. A round-robin client
then sends web requests (the `slow_web` endpoint, no sleep) from WEB_CLIENTS threads and
spawns CALLS calls of `attempt_number(1.0, 99)` (one second each) evenly over SECONDS
seconds. Halfway through, the second host is killed with SIGKILL. The client behaves like
a load balancer with passive health checks: a request whose connection fails marks that
host down and is sent to the next one.

Prints: calls lost (acknowledged with 202 but never finished with success; must be 0),
extra executions (attempts beyond each call's first: the calls the dead host was running
ran again elsewhere), web requests that failed on the dead host and were retried, web
errors seen by the client, and web latency p50/p99 before the kill, in the failover window
(the lease, 5 s, plus 2 s) and after it. Traffic stays on 127.0.0.1 and stops by itself.
"""

import argparse
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

WEB_HOST = "main--fn-app-slow-web.localhost"
FAILOVER_WINDOW_S = 7.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(tmp):
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not bins:
        raise SystemExit("no PostgreSQL in /usr/lib/postgresql (apt-get install postgresql)")
    bin_dir = bins[-1]
    prefix = []
    if os.geteuid() == 0:
        prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        shutil.chown(tmp, "nobody", "nogroup")
    data = os.path.join(tmp, "data")
    subprocess.run(prefix + [f"{bin_dir}/initdb", "--auth=trust", "--username=postgres",
                             "--no-sync", "-D", data], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen(prefix + [f"{bin_dir}/postgres", "-D", data, "-p", str(port),
                                      "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
                                      "-k", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        ok = subprocess.run([f"{bin_dir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                            capture_output=True).returncode == 0
        if ok:
            break
        if time.time() > deadline:
            raise SystemExit("postgres did not start")
        time.sleep(0.1)
    subprocess.run([f"{bin_dir}/psql", "-X", "-q", "-c", "CREATE DATABASE bench",
                    f"postgres://postgres@127.0.0.1:{port}/postgres"], check=True)
    return proc, f"postgres://postgres@127.0.0.1:{port}/bench"


def start_host(binary, data_dir, database):
    os.makedirs(data_dir, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "server", "--data-dir", data_dir, "--port", "0", "--database", database],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "WASMHOST_LOG": "warn"},
    )
    for line in proc.stdout:
        m = re.search(r"http://[^:/\s]+:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, int(m.group(1))
    raise SystemExit(f"host {data_dir} printed no URL")


class Balancer:
    """Round-robin over the hosts; a host whose connection fails is taken out."""

    def __init__(self, ports):
        self.ports = list(ports)
        self.down = set()
        self.next = 0
        self.lock = threading.Lock()

    def pick(self):
        with self.lock:
            for _ in range(len(self.ports)):
                port = self.ports[self.next % len(self.ports)]
                self.next += 1
                if port not in self.down:
                    return port
        raise RuntimeError("every host is down")

    def mark_down(self, port):
        with self.lock:
            self.down.add(port)

    def request(self, method, path, headers, body=None):
        """Returns (status, body, seconds, retried_after_failure)."""
        retried = 0
        while True:
            port = self.pick()
            started = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                conn.close()
                return r.status, data, time.monotonic() - started, retried
            except (ConnectionError, OSError, http.client.HTTPException):
                self.mark_down(port)
                retried += 1


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wasmhost")
    ap.add_argument("examples")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--web-clients", type=int, default=8)
    ap.add_argument("--database")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="wasmhost-cluster-bench")
    procs = []
    cleanup = [tmp]
    try:
        database = args.database
        if not database:
            # Its own directory under /tmp: `nobody` cannot enter ours (0700).
            pg_dir = tempfile.mkdtemp(prefix="wasmhost-cluster-bench-pg")
            cleanup.append(pg_dir)
            pg, database = start_postgres(pg_dir)
            procs.append(pg)
        dirs = [os.path.join(tmp, f"host{i}") for i in (1, 2, 3)]
        hosts = [start_host(args.wasmhost, dirs[0], database)]
        token = open(os.path.join(dirs[0], "admin-token")).read().strip()
        for d in dirs[1:]:
            os.makedirs(d, exist_ok=True)
            shutil.copy(os.path.join(dirs[0], "secrets.key"), os.path.join(d, "secrets.key"))
            hosts.append(start_host(args.wasmhost, d, database))
        procs.extend(p for p, _ in hosts)
        ports = [port for _, port in hosts]
        wasm = os.path.join(args.examples, "functions.wasm")
        out = subprocess.run([args.wasmhost, "deploy", wasm, "--name", "fn-app"], capture_output=True, text=True,
                             env={**os.environ, "WASMHOST_SERVER": f"http://127.0.0.1:{ports[0]}",
                                  "WASMHOST_TOKEN": token})
        if out.returncode != 0:
            raise SystemExit(f"deploy failed: {out.stdout}{out.stderr}")
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        # Every host serves the deploy before the load starts.
        for port in ports:
            deadline = time.time() + 60
            while True:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/?seconds=0", headers={"Host": WEB_HOST})
                if conn.getresponse().status == 200:
                    break
                if time.time() > deadline:
                    raise SystemExit(f"host {port} never served the deploy")
                time.sleep(0.05)
        lb = Balancer(ports)
        status, body, _, _ = lb.request("GET", "/v1/apps", auth)
        app_id = next(a["app_id"] for a in json.loads(body)["data"] if a["name"] == "fn-app")
        _, body, _, _ = lb.request("GET", f"/v1/apps/{app_id}/functions", auth)
        fn = next(f["function_id"] for f in json.loads(body)["data"] if f["name"] == "attempt_number")

        start = time.monotonic()
        end = start + args.seconds
        kill_at = start + args.seconds / 2
        killed = {"t": None}
        web = []  # (time since start, latency s, status, retried)
        spawned = []
        spawn_errors = []
        lock = threading.Lock()

        def web_client():
            while time.monotonic() < end:
                t = time.monotonic()
                try:
                    status, _, took, retried = lb.request("GET", "/?seconds=0", {"Host": WEB_HOST})
                except RuntimeError:
                    status, took, retried = 0, 0.0, 0
                with lock:
                    web.append((t - start, took, status, retried))

        def spawner():
            interval = args.seconds / args.calls
            payload = json.dumps({"args": [1.0, 99]}).encode()
            for i in range(args.calls):
                due = start + i * interval
                time.sleep(max(0.0, due - time.monotonic()))
                status, body, _, _ = lb.request("POST", f"/v1/functions/{fn}/spawn", auth, payload)
                if status == 202:
                    spawned.append(json.loads(body)["call_id"])
                else:
                    spawn_errors.append((status, body[:200]))

        threads = [threading.Thread(target=web_client) for _ in range(args.web_clients)]
        threads.append(threading.Thread(target=spawner))
        for t in threads:
            t.start()
        time.sleep(max(0.0, kill_at - time.monotonic()))
        hosts[1][0].send_signal(signal.SIGKILL)
        killed["t"] = time.monotonic() - start
        for t in threads:
            t.join()
        load_end = time.monotonic()

        # Every acknowledged call must finish with success.
        pending = set(spawned)
        results = {}
        deadline = time.time() + 180
        while pending and time.time() < deadline:
            for cid in list(pending):
                _, body, _, _ = lb.request("GET", f"/v1/function-calls/{cid}", auth)
                call = json.loads(body)
                if call.get("status") not in ("pending", "running"):
                    results[cid] = call
                    pending.discard(cid)
            if pending:
                time.sleep(0.5)
        drained = time.monotonic() - load_end
        succeeded = sum(1 for c in results.values() if c.get("status") == "success")
        lost = len(spawned) - succeeded
        attempts = sum(len(c.get("attempts", [])) for c in results.values())
        interrupted = sum(1 for c in results.values()
                          if any(a.get("outcome") == "interrupted" for a in c.get("attempts", [])))

        k = killed["t"]
        before = [lat for t, lat, s, _ in web if t < k and s == 200]
        window = [lat for t, lat, s, _ in web if k <= t < k + FAILOVER_WINDOW_S and s == 200]
        after = [lat for t, lat, s, _ in web if t >= k + FAILOVER_WINDOW_S and s == 200]
        web_errors = sum(1 for _, _, s, _ in web if s != 200)
        window_errors = sum(1 for t, _, s, _ in web if k <= t < k + FAILOVER_WINDOW_S and s != 200)
        retried = sum(r for _, _, _, r in web)
        ms = lambda v: f"{v * 1e3:.1f}"
        print(f"hosts: 3 on one PostgreSQL; host 2 killed with SIGKILL at t={k:.1f}s of {args.seconds:.0f}s")
        print(f"calls spawned (202): {len(spawned)} of {args.calls}; spawn requests refused: {len(spawn_errors)}")
        print(f"calls lost: {lost}  (finished with success: {succeeded}; still unfinished: {len(pending)})")
        print(f"calls cut short by the kill and run again elsewhere: {interrupted}")
        print(f"extra executions (attempts beyond the first): {attempts - len(results)}")
        print(f"all calls finished {drained:.1f}s after the load ended")
        print(f"web requests: {len(web)}; errors seen by the client: {web_errors} "
              f"(in the failover window: {window_errors}); failed on the dead host and retried: {retried}")
        print(f"web p50/p99 ms before the kill: {ms(percentile(before, 50))} / {ms(percentile(before, 99))} "
              f"({len(before)} requests)")
        print(f"web p50/p99 ms failover window ({FAILOVER_WINDOW_S:.0f}s): {ms(percentile(window, 50))} / "
              f"{ms(percentile(window, 99))} ({len(window)} requests)")
        print(f"web p50/p99 ms after: {ms(percentile(after, 50))} / {ms(percentile(after, 99))} ({len(after)} requests)")
        return 0 if lost == 0 else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
