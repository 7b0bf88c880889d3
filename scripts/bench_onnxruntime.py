"""Builds the tree-engine benchmark models and times onnxruntime on them.

Usage: .venv/bin/python scripts/bench_onnxruntime.py [--out bench-out] [--seconds 1.0]

Writes, under --out (default bench-out/, git-ignored):
  rf.onnx     RandomForestClassifier, 300 trees, max_depth 12, 20 features (skl2onnx, zipmap off)
  gbm.onnx    HistGradientBoostingRegressor, 500 trees, max_depth 6, 20 features
  rows.f32    10,000 rows x 20 features, float32 little-endian, row-major: the rows both
              onnxruntime and inferd's criterion bench (crates/inferd-trees/benches) evaluate
  onnxruntime.json   the timings below
and prints, for each model, batch size (1, 64, 10,000) and thread count (1, 2), onnxruntime's
median time per call and rows per second. The models are only rebuilt when missing, so the
criterion bench and this script always see the same files.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
import onnxruntime as ort

N_FEATURES = 20
N_ROWS = 10_000
BATCHES = (1, 64, 10_000)
THREADS = (1, 2)


def build(out):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
    from skl2onnx import to_onnx

    X, y = make_classification(n_samples=20_000, n_features=N_FEATURES, n_informative=12,
                               random_state=0)
    X = X.astype(np.float32)
    rows = os.path.join(out, "rows.f32")
    if not os.path.exists(rows):
        X[:N_ROWS].astype("<f4").tofile(rows)
    rf_path = os.path.join(out, "rf.onnx")
    if not os.path.exists(rf_path):
        rf = RandomForestClassifier(n_estimators=300, max_depth=12, random_state=0, n_jobs=-1)
        rf.fit(X, y)
        onx = to_onnx(rf, X[:1], options={id(rf): {"zipmap": False}},
                      target_opset={"": 17, "ai.onnx.ml": 3})
        with open(rf_path, "wb") as f:
            f.write(onx.SerializeToString())
    gbm_path = os.path.join(out, "gbm.onnx")
    if not os.path.exists(gbm_path):
        # A regression target from the same features; max_leaf_nodes=None lets depth 6 fill.
        target = X @ np.random.RandomState(0).normal(size=N_FEATURES) + y
        gbm = HistGradientBoostingRegressor(max_iter=500, max_depth=6, max_leaf_nodes=None,
                                            early_stopping=False, random_state=0)
        gbm.fit(X, target)
        onx = to_onnx(gbm, X[:1], target_opset={"": 17, "ai.onnx.ml": 3})
        with open(gbm_path, "wb") as f:
            f.write(onx.SerializeToString())


def time_calls(sess, name, rows, seconds):
    """Median wall seconds per call over about `seconds` seconds of calls, and mean process
    CPU seconds per call (which, on a shared machine, excludes time the neighbours took; it
    equals this thread's CPU time when onnxruntime runs with one thread)."""
    for _ in range(3):
        sess.run(None, {name: rows})
    samples = []
    cpu0 = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        t0 = time.perf_counter()
        sess.run(None, {name: rows})
        samples.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / len(samples)
    return statistics.median(samples), cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    build(args.out)
    rows = np.fromfile(os.path.join(args.out, "rows.f32"), dtype="<f4").reshape(N_ROWS, N_FEATURES)
    results = []
    print(f"onnxruntime {ort.__version__}")
    print(f"{'model':5} {'batch':>6} {'threads':>7} {'median/call':>14} {'rows/s':>14} {'cpu/call':>14}")
    for model in ("rf", "gbm"):
        path = os.path.join(args.out, f"{model}.onnx")
        for threads in THREADS:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            name = sess.get_inputs()[0].name
            for batch in BATCHES:
                t, cpu = time_calls(sess, name, rows[:batch], args.seconds)
                results.append({"model": model, "batch": batch, "threads": threads,
                                "seconds_per_call": t, "rows_per_second": batch / t,
                                "cpu_seconds_per_call": cpu})
                print(f"{model:5} {batch:>6} {threads:>7} {t * 1e6:>11.1f} us {batch / t:>14.0f}"
                      f" {cpu * 1e6:>11.1f} us")
    with open(os.path.join(args.out, "onnxruntime.json"), "w") as f:
        json.dump({"onnxruntime": ort.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
