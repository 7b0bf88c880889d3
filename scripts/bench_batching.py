#!/usr/bin/env python3
"""Dynamic batching on vs off, on a heavy model, with `inferd bench`, in one run.

Two models:
- `rf`: the tree-engine benchmark's RandomForest (300 trees, depth 12, 20 features, made by
  scripts/bench_onnxruntime.py in bench-out/rf.onnx);
- `mlp`: a scikit-learn MLPClassifier with two 1024-wide hidden layers on 64 features,
  converted with skl2onnx (made here in bench-out/mlp.onnx; weights need not be trained well
  for a speed test, so it fits for three iterations).
inferd serves the model twice from two repositories that differ only in config.toml's
[batching] table; each gets 64 concurrent single-row V2 REST requests. Prints a Markdown
table (and writes bench-out/batching-MODEL.json).

    .venv/bin/python scripts/bench_batching.py [--model rf|mlp] [--duration 10] [--delay-ms 2]
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


def make_mlp(path, width):
    import warnings

    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.neural_network import MLPClassifier

    x, y = make_classification(n_samples=2000, n_features=64, n_informative=20, n_classes=4,
                               random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three iterations do not converge; speed is all we need
        mlp = MLPClassifier(hidden_layer_sizes=(width, width), max_iter=3, random_state=0).fit(x, y)
    onx = to_onnx(mlp, x[:1].astype(np.float32), options={id(mlp): {"zipmap": False}})
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(onx.SerializeToString())


FEATURES = {"rf": 20, "mlp": 64, "cnn": 64}


def bench(url, duration, model):
    values = ",".join(["0.5"] * FEATURES[model])
    report = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    subprocess.run(
        [INFERD, "bench", "--url", url, "--protocol", "v2-json", "--model", model, "--values", values,
         "--concurrency", "64", "--duration", f"{duration}s", "--warmup", "2s", "--threads", "1",
         "--json-out", report, "--quiet", "--max-error-rate", "1"],
        capture_output=True, text=True, check=True)
    with open(report) as f:
        result = json.load(f)
    os.unlink(report)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(FEATURES), default="rf")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--delay-ms", type=float, default=2.0)
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--mlp-width", type=int, default=1024, help="units in each hidden layer of the MLP")
    args = ap.parse_args()
    name = f"mlp-{args.mlp_width}" if args.model == "mlp" else args.model
    model = ROOT / "bench-out" / f"{name}.onnx"
    if args.model == "cnn":
        model = ROOT / "fixtures" / "nn" / "digits_cnn" / "model.onnx"
    if args.model == "mlp" and not model.exists():
        make_mlp(model, args.mlp_width)
    if args.model == "rf" and not model.exists():
        subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "bench_onnxruntime.py"),
                        "--seconds", "0.2"], check=True)
    results = {}
    for mode in ("off", "on"):
        repo = Path(tempfile.mkdtemp(prefix=f"inferd-batching-{mode}-"))
        (repo / args.model / "1").mkdir(parents=True)
        shutil.copy(model, repo / args.model / "1" / "model.onnx")
        if mode == "on":
            (repo / args.model / "config.toml").write_text(
                f"[batching]\nmax_batch_size = {args.max_batch}\nmax_queue_delay_ms = {args.delay_ms}\nmax_queue_size = 1024\n")
        proc, url = serve(repo)
        try:
            results[mode] = bench(url, args.duration, args.model)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            shutil.rmtree(repo)
    (ROOT / "bench-out").mkdir(exist_ok=True)
    (ROOT / "bench-out" / f"batching-{args.model}.json").write_text(json.dumps(results, indent=1))

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
