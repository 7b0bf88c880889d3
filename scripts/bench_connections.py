#!/usr/bin/env python3
"""Memory taken by connections, and how much comes back: cycles of N connections that each
send one /predict request, read the answer and close, against inferd with each allocator
(glibc malloc as is, glibc with MALLOC_ARENA_MAX=2, jemalloc and mimalloc through LD_PRELOAD).
Prints RSS at start, the peak, and after each cycle, side by side in one run.

    .venv/bin/python scripts/bench_connections.py --connections 10000 --cycles 7

jemalloc and mimalloc come from Debian's libjemalloc2 and libmimalloc2.0; a missing one is
reported and left out of the table."""

import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_report import free_port, rss_mb  # noqa: E402  (the same helpers as bench-report)
BODY = b'{"inputs": [5.1, 3.5, 1.4, 0.2]}'
REQUEST = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
LIBS = Path("/usr/lib/x86_64-linux-gnu")
ALLOCATORS = {
    "glibc": {},
    "glibc, MALLOC_ARENA_MAX=2": {"MALLOC_ARENA_MAX": "2"},
    "jemalloc": {"LD_PRELOAD": str(LIBS / "libjemalloc.so.2")},
    "mimalloc": {"LD_PRELOAD": str(LIBS / "libmimalloc.so.2")},
}


def open_connections(port, n):
    """n connections, each sends one request and reads its answer (kept open)."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        socks.append(s)
    pending = {s.fileno(): b"" for s in socks}
    answered = 0
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for key, events in sel.select(timeout=1):
            s = key.fileobj
            if events & selectors.EVENT_WRITE:
                try:
                    s.send(REQUEST)
                except OSError:
                    continue
                sel.modify(s, selectors.EVENT_READ)
            elif events & selectors.EVENT_READ:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                buf = pending[s.fileno()] + data
                if b"\r\n\r\n" in buf or not data:
                    del pending[s.fileno()]
                    sel.unregister(s)
                    answered += b" 200 " in buf
                else:
                    pending[s.fileno()] = buf
    sel.close()
    return socks, answered


def run(name, env_extra, args, out):
    port = free_port()
    env = dict(os.environ, **env_extra)
    cmd = [args.bin, "serve", "--host", "127.0.0.1", "--http-port", str(port),
           "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
           "--shutdown-delay", "0", "--log", "warn"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.5)
        start = rss_mb(proc.pid)
        peak, after = start, []
        for _ in range(args.cycles):
            socks, answered = open_connections(port, args.connections)
            peak = max(peak, rss_mb(proc.pid))
            for s in socks:
                s.close()
            time.sleep(args.settle)
            after.append(rss_mb(proc.pid))
            if answered < args.connections * 0.99:
                print(f"  {name}: only {answered} of {args.connections} answered", file=sys.stderr)
        out.append((name, start, peak, after))
    finally:
        proc.terminate()
        proc.wait(30)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.environ.get("INFERD_BIN", str(ROOT / "target/release/inferd")))
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--cycles", type=int, default=7)
    p.add_argument("--settle", type=float, default=2.0, help="seconds after closing before RSS is read")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 512), hard))
    results = []
    for name, env in ALLOCATORS.items():
        preload = env.get("LD_PRELOAD")
        if preload and not Path(preload).exists():
            print(f"{name}: {preload} not installed, left out", file=sys.stderr)
            continue
        run(name, env, args, results)
    print(f"\n{args.connections} connections x {args.cycles} cycles (one /predict each), RSS in MB")
    print("| allocator | start | peak | after cycle 1 | after last cycle |")
    print("|---|---:|---:|---:|---:|")
    for name, start, peak, after in results:
        print(f"| {name} | {start:.1f} | {peak:.1f} | {after[0]:.1f} | {after[-1]:.1f} |")


if __name__ == "__main__":
    main()
