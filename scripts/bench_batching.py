#!/usr/bin/env python3
"""Dynamic batching on vs off, on a heavy model, with `inferd bench`, in one run.

The model is the tree-engine benchmark's RandomForest (300 trees, depth 12, 20 features, made
by scripts/bench_onnxruntime.py in bench-out/rf.onnx). inferd serves it twice from two
repositories that differ only in config.toml's [batching] table; each gets 64 concurrent
single-row V2 REST requests. Prints a Markdown table (and writes bench-out/batching.json).

    .venv/bin/python scripts/bench_batching.py [--duration 10] [--delay-ms 2]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFERD = os.environ.get("INFERD_BIN", str(ROOT / "target" / "release" / "inferd"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(repo):
    ports = [free_port() for _ in range(3)]
    proc = subprocess.Popen(
        [INFERD, "serve", "--host", "127.0.0.1", "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
         "--metrics-port", str(ports[2]), "--model-repository", str(repo), "--shutdown-delay", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{ports[0]}"
    for _ in range(600):
        try:
            if urllib.request.urlopen(url + "/v2/health/ready", timeout=1).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("inferd did not become ready")


def bench(url, duration):
    values = ",".join(["0.5"] * 20)
    report = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    subprocess.run(
        [INFERD, "bench", "--url", url, "--protocol", "v2-json", "--model", "rf", "--values", values,
         "--concurrency", "64", "--duration", f"{duration}s", "--warmup", "2s", "--threads", "1",
         "--json-out", report, "--quiet", "--max-error-rate", "1"],
        capture_output=True, text=True, check=True)
    with open(report) as f:
        result = json.load(f)
    os.unlink(report)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--delay-ms", type=float, default=2.0)
    args = ap.parse_args()
    model = ROOT / "bench-out" / "rf.onnx"
    if not model.exists():
        subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "bench_onnxruntime.py"),
                        "--seconds", "0.2"], check=True)
    results = {}
    for mode in ("off", "on"):
        repo = Path(tempfile.mkdtemp(prefix=f"inferd-batching-{mode}-"))
        (repo / "rf" / "1").mkdir(parents=True)
        shutil.copy(model, repo / "rf" / "1" / "model.onnx")
        if mode == "on":
            (repo / "rf" / "config.toml").write_text(
                f"[batching]\nmax_batch_size = 64\nmax_queue_delay_ms = {args.delay_ms}\nmax_queue_size = 1024\n")
        proc, url = serve(repo)
        try:
            results[mode] = bench(url, args.duration)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            shutil.rmtree(repo)
    (ROOT / "bench-out").mkdir(exist_ok=True)
    (ROOT / "bench-out" / "batching.json").write_text(json.dumps(results, indent=1))

    def get(r, *keys):
        for k in keys:
            r = r[k]
        return r

    print("| batching | requests/s | p50 (ms) | p99 (ms) | errors |")
    print("|---|---:|---:|---:|---:|")
    for mode in ("off", "on"):
        r = results[mode]
        lat = r["latency_ms"]
        print(f"| {mode} | {r['rps']:,.0f} | {lat['p50']:.3f} | {lat['p99']:.3f} | {r['errors']} |")
    ratio = results["on"]["rps"] / results["off"]["rps"]
    print(f"\nthroughput on/off: {ratio:.2f}×; p99 on − p99 off: "
          f"{results['on']['latency_ms']['p99'] - results['off']['latency_ms']['p99']:.3f} ms "
          f"(budget 2 × max_queue_delay = {2 * args.delay_ms} ms)")


if __name__ == "__main__":
    main()
