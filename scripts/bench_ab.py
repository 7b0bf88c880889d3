#!/usr/bin/env python3
"""Two inferd binaries side by side on the seed path, in one run: `/predict` on the built-in
model at 64 connections (throughput) and at 1 connection (latency), alternating A and B for a
few rounds so that machine drift hits both alike. Reports requests/s, p50/p99 and the server's
CPU time per request (from /proc), and B's ratio to A.

    .venv/bin/python scripts/bench_ab.py --a old/inferd --b target/release/inferd

`inferd bench` from B's binary is the load generator for both."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_report import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start(binary):
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--http-port", str(port),
                             "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
                             "--shutdown-delay", "0", "--log", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            import urllib.request
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status == 200:
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{binary} did not become ready")


def load(generator, port, connections, seconds):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([generator, "bench", "--quiet", "--url", f"http://127.0.0.1:{port}/predict",
                        "--concurrency", str(connections), "--duration", f"{seconds}s", "--warmup", "0",
                        "--json-out", out.name], check=True, stdout=subprocess.DEVNULL)
        return json.load(open(out.name))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="the baseline binary")
    p.add_argument("--b", required=True, help="the binary under test")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=8)
    args = p.parse_args()
    results = {(side, c): [] for side in "ab" for c in (64, 1)}
    for _ in range(args.rounds):
        for side, binary in (("a", args.a), ("b", args.b)):
            proc, port = start(binary)
            try:
                for connections in (64, 1):
                    cpu0 = cpu_seconds(proc.pid)
                    report = load(args.b, port, connections, args.seconds)
                    cpu = cpu_seconds(proc.pid) - cpu0
                    results[(side, connections)].append({
                        "rps": report["rps"],
                        "p50": report["latency_ms"]["p50"],
                        "p99": report["latency_ms"]["p99"],
                        "cpu_us": cpu / max(report["requests"], 1) * 1e6,
                    })
            finally:
                proc.terminate()
                proc.wait(30)
    print("\n| load | measure | A (median) | B (median) | B / A |")
    print("|---|---|---:|---:|---:|")
    for connections in (64, 1):
        for key, name in (("rps", "requests/s"), ("p50", "p50 ms"), ("p99", "p99 ms"),
                          ("cpu_us", "server CPU µs/request")):
            a = statistics.median(r[key] for r in results[("a", connections)])
            b = statistics.median(r[key] for r in results[("b", connections)])
            print(f"| /predict, {connections} conn | {name} | {a:,.3f} | {b:,.3f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()
