#!/usr/bin/env python3
"""Python guests side by side with the same apps under native servers, on this machine.

For the Flask, Starlette and FastAPI examples: build time, component size, first byte
from a never-used instance, requests/s with p50/p99 at c=1 and c=64 on warm instances and
resident memory per instance — against gunicorn (sync workers) for Flask and uvicorn for
Starlette and FastAPI, installed into bench/.venv-native by this script. The FastAPI row
also gives the one-time build of pydantic-core for WASI, when this run did it. Writes its section at the end
of bench/RESULTS.md (a run of bench/run.sh keeps it).

    bench/python.py                    # builds what it needs (release), ~3 minutes
    bench/python.py --duration 2s

Not run in CI: it measures, it does not check.
"""

import argparse
import json
import os
import re
import shutil
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

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- python rows: written by bench/python.py -->"
# (example, request path, native server, the decorated function that returns the app)
APPS = [
    ("flask", "/hello/bench", "gunicorn", "flask_app"),
    ("starlette", "/", "uvicorn", "web"),
    ("fastapi", "/items?offset=0&limit=10", "uvicorn", "api"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, path, deadline_s=60.0):
    """Polls until the server answers `path`; returns seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.monotonic() - start
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"nothing listening on port {port} after {deadline_s} s")


def first_byte(port, path):
    """Seconds from sending a GET on a new connection to the first byte of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        start = time.perf_counter()
        s.sendall(request.encode())
        head = s.recv(1)
        elapsed = time.perf_counter() - start
        if not head:
            raise RuntimeError("the server closed the connection without answering")
        rest = head + s.recv(65536)
        if not rest.startswith(b"HTTP/1.1 2"):
            raise RuntimeError(f"unexpected answer: {rest[:200]!r}")
        return elapsed


def load(bench, port, path, concurrency, duration, warmup):
    out = subprocess.run(
        [str(bench), "load", "--addr", f"127.0.0.1:{port}", "--path", path,
         "--concurrency", str(concurrency), "--duration", duration, "--warmup", warmup],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_kib(pid):
    """Resident memory of `pid` and its children (workers), in KiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def metric(port, suffix):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.split("{")[0].endswith(suffix):
            total += float(value)
    return total


def start(cmd, env=None, cwd=None):
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def start_wasmhost(cmd, env):
    """Starts `wasmhost run` and returns once it printed its URL: it binds its port first
    (to name its URLs) and deploys after, so a connection alone does not mean it serves."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, text=True)
    for line in proc.stdout:
        if line.startswith("http://"):
            break
    else:
        raise RuntimeError(f"wasmhost exited before serving: {cmd}")
    # Keep draining what it prints, so a full pipe never stalls it.
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    return proc


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def pins(example):
    """The `pip_install(...)` pins of an example (what the component bundles)."""
    text = (ROOT / "examples/python" / example / "app.py").read_text()
    call = re.search(r"pip_install\(([^)]*)\)", text)
    return re.findall(r"\"([^\"]+)\"", call.group(1)) if call else []


def native_venv():
    # uvicorn[standard] (httptools, uvloop) as `fastapi[standard]` deploys it: plain uvicorn's
    # h11 writes a response's head and body separately, and at c=1 the client's delayed ACK
    # then holds every response for 40 ms.
    venv = ROOT / "bench/.venv-native"
    py = venv / "bin/python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wanted = sorted({p for ex, *_ in APPS for p in pins(ex)} | {"gunicorn", "uvicorn[standard]"})
    subprocess.run([str(py), "-m", "pip", "install", "-q", *wanted], check=True)
    return py


def native_server(py, example, server, func, port, workers):
    """The example's own app object under its native server (SDK imported natively)."""
    shim = (
        "import sys; sys.path[:0] = [{sdk!r}, {app!r}]\n"
        "import app as module\n"
        "application = module.{func}.local()\n"
    ).format(sdk=str(ROOT / "guest-sdk/python"), app=str(ROOT / "examples/python" / example),
             func=func)
    tmp = Path(tempfile.mkdtemp(prefix="wasmhost-bench-"))
    (tmp / "native_shim.py").write_text(shim)
    bindir = py.parent
    if server == "gunicorn":
        cmd = [str(bindir / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
               "--log-level", "warning", "native_shim:application"]
    else:
        cmd = [str(bindir / "uvicorn"), "--workers", str(workers), "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "native_shim:application"]
    return start(cmd, cwd=tmp), tmp


def bench_wasmhost(args, example, path):
    row = {}
    # The example itself first, untimed: componentize-py, the dependencies and any
    # extension built for WASI (pydantic-core) are then cached, as on a developer's machine
    # after the first build, and the timed build below is the app's own.
    out = subprocess.run([str(args.wasmhost), "build", str(ROOT / "examples/python" / example / "app.py")],
                         check=True, capture_output=True, text=True)
    ext = re.search(r"built (\S+) (\S+) for WASI in (\d+) s", out.stderr)
    row["ext_build"] = f"{ext.group(1)} {ext.group(2)}: {ext.group(3)} s" if ext else None
    with tempfile.TemporaryDirectory(prefix="wasmhost-bench-py-") as tmp:
        # A copy, so the build is a real one (the component cache is keyed by the file).
        app_dir = Path(tmp) / example
        shutil.copytree(ROOT / "examples/python" / example, app_dir)
        app = app_dir / "app.py"
        t = time.monotonic()
        out = subprocess.run([str(args.wasmhost), "build", str(app)], check=True,
                             capture_output=True, text=True)
        row["build_s"] = time.monotonic() - t
        wasm = Path(out.stdout.strip().splitlines()[-1])
        row["size_mib"] = wasm.stat().st_size / 2**20
        cache = Path(tmp) / "cache"
        env = dict(os.environ, WASMHOST_LOG="warn")

        # First byte from a never-used instance: a fresh host each time, compiled code
        # cached, the request the first one it serves.
        firsts = []
        for _ in range(args.cold_runs):
            port = free_port()
            proc = start_wasmhost([str(args.wasmhost), "run", str(wasm), "--port", str(port),
                                   "--cache-dir", str(cache)], env=env)
            try:
                wait_ready(port, path)
                firsts.append(first_byte(port, path))
            finally:
                stop(proc)
        row["first_byte_ms"] = statistics.median(firsts) * 1e3

        # Every request a new instance.
        port = free_port()
        proc = start_wasmhost([str(args.wasmhost), "run", str(wasm), "--port", str(port),
                               "--cache-dir", str(cache), "--isolation", "per-request"], env=env)
        try:
            wait_ready(port, path)
            row["per_request"] = load(args.bench, port, path, 1, args.duration, args.warmup)
        finally:
            stop(proc)

        port = free_port()
        proc = start_wasmhost([str(args.wasmhost), "run", str(wasm), "--port", str(port),
                               "--cache-dir", str(cache)], env=env)
        try:
            wait_ready(port, path)
            first_byte(port, path)
            base_rss, base_live = rss_kib(proc.pid), metric(port, "instances_live")
            for c in (1, 64):
                row[f"c{c}"] = load(args.bench, port, path, c, args.duration, args.warmup)
            live = metric(port, "instances_live")
            row["instances"] = live
            grown = rss_kib(proc.pid) - base_rss
            row["rss_per_instance_mib"] = (
                grown / (live - base_live) / 1024 if live > base_live else None
            )
            row["rss_mib"] = rss_kib(proc.pid) / 1024
        finally:
            stop(proc)
    return row


def bench_native(args, py, example, path, server, func):
    row = {"server": server, "workers": args.workers}
    port = free_port()
    proc, tmp = native_server(py, example, server, func, port, args.workers)
    try:
        wait_ready(port, path)
        time.sleep(0.5)  # workers fork after the socket is bound
        row["first_byte_ms"] = first_byte(port, path) * 1e3
        for c in (1, 64):
            row[f"c{c}"] = load(args.bench, port, path, c, args.duration, args.warmup)
        row["rss_mib"] = rss_kib(proc.pid) / 1024
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def render(results, args):
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()
    lines = [
        MARK,
        "",
        "## Python guests (bench/python.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, wasmhost {git}, "
        f"{os.cpu_count()} cores; each load {args.duration} after {args.warmup} warmup, "
        "load generator `wasmhost-bench load` on the same cores. Native servers run the "
        f"same app object with {args.workers} worker processes. First byte: a new "
        f"connection's GET to the first response byte, median of {args.cold_runs} fresh "
        "hosts (compiled code cached, nothing served before). The deploy starts the web "
        "app's first instance and warms it up (one request no route matches, so no handler "
        "runs); the first byte is that instance's first real request. What a never-warmed "
        "instance costs shows in the per-request rows below: every request a fresh instance, "
        "which touches ~1,000 pages of its heap image (page faults) as it runs.",
        "",
        "| app | server | build s | component MiB | first byte ms | c=1 req/s | c=1 p50/p99 µs "
        "| c=64 req/s | c=64 p50/p99 µs | RSS MiB | MiB per instance | × native (c=64) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for example, wasm, native in results:
        def cells(r):
            return [f"{r['c1']['rps']:.0f}", f"{r['c1']['p50_us']:.0f} / {r['c1']['p99_us']:.0f}",
                    f"{r['c64']['rps']:.0f}", f"{r['c64']['p50_us']:.0f} / {r['c64']['p99_us']:.0f}"]
        ratio = wasm["c64"]["rps"] / native["c64"]["rps"] if native["c64"]["rps"] else 0
        per = wasm["rss_per_instance_mib"]
        lines.append("| " + " | ".join([
            example, "wasmhost", f"{wasm['build_s']:.1f}", f"{wasm['size_mib']:.1f}",
            f"{wasm['first_byte_ms']:.2f}", *cells(wasm), f"{wasm['rss_mib']:.0f}",
            f"{per:.1f}" if per else "–", f"{ratio:.2f}×"]) + " |")
        lines.append("| " + " | ".join([
            example, native["server"], "–", "–", f"{native['first_byte_ms']:.2f}",
            *cells(native), f"{native['rss_mib']:.0f}", "–", "1.00×"]) + " |")
    lines += ["", "A new instance per request (`--isolation per-request`, c=1):", ""]
    for example, wasm, _ in results:
        r = wasm["per_request"]
        lines.append(f"- {example}: {r['rps']:.0f} req/s, p50 {r['p50_us']:.0f} µs, "
                     f"p99 {r['p99_us']:.0f} µs, {r['errors']} errors")
    built = [f"{w['ext_build']} ({example})" for example, w, _ in results if w.get("ext_build")]
    lines += ["", "Build: `wasmhost build` of a copy of the example with its dependencies cached "
              "(the app's own componentize-py build and snapshot). "
              + ("Built for WASI once in this run: " + ", ".join(built) + "."
                 if built else "Extensions for WASI (pydantic-core) were already cached.")]
    errors = [f"{ex} {name} c={k[1:]}: {r[k]['errors']}" for ex, w, n in results
              for name, r in (("wasmhost", w), (n["server"], n)) for k in ("c1", "c64")
              if r[k]["errors"]]
    lines += ["", "Errors (non-2xx answers or failed connections) during the warm loads: "
              + ("; ".join(errors) if errors else "none") + ".", ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wasmhost", type=Path, default=ROOT / "target/release/wasmhost")
    p.add_argument("--bench", type=Path, default=ROOT / "target/release/wasmhost-bench")
    p.add_argument("--duration", default="5s")
    p.add_argument("--warmup", default="1s")
    p.add_argument("--cold-runs", type=int, default=5)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    args = p.parse_args()
    if not args.no_build:
        # Two commands: `--bin wasmhost` would filter out wasmhost-bench's binary.
        subprocess.run(["cargo", "build", "--release", "-p", "wasmhost", "--bin", "wasmhost"],
                       cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "-p", "wasmhost-bench"], cwd=ROOT, check=True)
    py = native_venv()
    results = []
    for example, path, server, func in APPS:
        print(f"== {example}: wasmhost", file=sys.stderr)
        wasm = bench_wasmhost(args, example, path)
        print(f"== {example}: {server}", file=sys.stderr)
        native = bench_native(args, py, example, path, server, func)
        results.append((example, wasm, native))
    section = render(results, args)
    print(section)
    out = ROOT / "bench/RESULTS.md"
    old = out.read_text() if out.exists() else ""
    kept = old[: old.find(MARK)] if MARK in old else old
    out.write_text(kept.rstrip("\n") + "\n\n" + section)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
