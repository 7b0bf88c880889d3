#!/usr/bin/env python3
"""Overload behaviour: inferd and the seed's Flask server, each offered 3x its own capacity, in
one run, with `inferd bench` in open loop (requests sent on schedule whatever the answers do).

For each server: measure its capacity (closed loop), then offer 3x that for --seconds while
sampling its RSS every half second, then time one request after the load. Prints Markdown
(and writes bench-out/overload.json).

- inferd serves the wide MLP of scripts/bench_batching.py (two 2048-wide hidden layers, about
  0.5 ms a row) on one inference thread with `--max-queue 32`, so that 3x its capacity is a
  rate the generator can offer on this machine;
- Flask serves the seed's own model (it serves nothing else) on its threaded server, as the
  tutorial runs it.

    .venv/bin/python scripts/bench_overload.py [--seconds 20] [--factor 3]
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batching import make_mlp  # noqa: E402
from bench_report import FLASK, SEED_BODY, Server, baseline_python, free_port, rss_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INFERD = os.environ.get("INFERD_BIN", str(ROOT / "target" / "release" / "inferd"))
MLP_VALUES = ",".join(["0.5"] * 64)


def start_inferd(model):
    ports = [free_port() for _ in range(3)]
    cmd = [INFERD, "serve", "--host", "127.0.0.1", "--http-port", str(ports[0]),
           "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), "--model", str(model),
           "--inference-threads", "1", "--io-threads", "2", "--max-queue", "32", "--shutdown-delay", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{ports[0]}"
    for _ in range(600):
        try:
            if urllib.request.urlopen(url + "/v2/health/ready", timeout=1).status == 200:
                return proc, url, cmd
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("inferd did not become ready")


def bench(flags):
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    subprocess.run([INFERD, "bench", *flags, "--threads", "1", "--max-error-rate", "1", "--quiet",
                    "--json-out", str(out)], check=True, stdout=subprocess.DEVNULL)
    report = json.loads(out.read_text())
    out.unlink()
    return report


def overload(name, pid, target_flags, one_request, args):
    """Capacity, then factor x capacity in open loop with RSS sampled; then one request."""
    capacity = bench([*target_flags, "--concurrency", "8", "--duration", "5s", "--warmup", "1s"])["ok_rps"]
    rate = round(capacity * args.factor)
    flags = [*target_flags, "--rate", str(rate), "--concurrency", "1024", "--duration",
             f"{args.seconds}s", "--warmup", "2s", "--timeout", "10s"]
    print(f"=== {name}: capacity {capacity:.0f}/s, offering {rate}/s for {args.seconds}s",
          file=sys.stderr, flush=True)
    rss, done = [], threading.Event()

    def sample():
        start = time.perf_counter()
        while not done.is_set():
            rss.append((round(time.perf_counter() - start, 1), rss_mb(pid)))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        report = bench(flags)
    finally:
        done.set()
        sampler.join()
    t = time.perf_counter()
    one_request()
    after_ms = (time.perf_counter() - t) * 1e3
    shown = ["inferd", "bench", *flags, "--threads", "1", "--max-error-rate", "1", "--quiet"]
    return {"capacity": capacity, "rate": rate, "report": report, "rss_mb": rss,
            "after_ms": after_ms, "cmd": " ".join(shlex.quote(c) for c in shown)}


def post(url, body):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()


def render(runs, args):
    def lat(r, key, q):
        l = r["report"].get(key)
        return f"{l[q]:,.1f}" if l and l["count"] else "–"

    lines = [f"| | {FLASK} | inferd |", "|---|---:|---:|"]
    rows = [
        ("capacity (closed loop, 8 connections), requests/s", lambda r: f"{r['capacity']:,.0f}"),
        (f"offered ({args.factor:g}× capacity, open loop), requests/s", lambda r: f"{r['rate']:,}"),
        ("answered 200, requests/s", lambda r: f"{r['report']['ok_rps']:,.0f}"),
        ("shed with 503", lambda r: f"{r['report']['errors_by_kind'].get('http_503', 0):,}"),
        ("timed out (10 s) or failed otherwise",
         lambda r: f"{sum(n for k, n in r['report']['errors_by_kind'].items() if k != 'http_503'):,}"),
        ("200 latency p50 / p99 (ms)", lambda r: f"{lat(r, 'ok_latency_ms', 'p50')} / {lat(r, 'ok_latency_ms', 'p99')}"),
        ("503 latency p50 / p99 (ms)",
         lambda r: f"{lat(r, 'refused_latency_ms', 'p50')} / {lat(r, 'refused_latency_ms', 'p99')}"),
        ("RSS before → peak (MB)",
         lambda r: f"{r['rss_mb'][0][1]:.0f} → {max(v for _, v in r['rss_mb']):.0f}"),
        ("one request right after the load (ms)", lambda r: f"{r['after_ms']:,.1f}"),
        ("generator send lag p99 (ms)", lambda r: lat(r, "send_lag_ms", "p99")),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | {cell(runs[FLASK])} | {cell(runs['inferd'])} |")
    grid = list(range(0, args.seconds + 1, 2))

    def at(samples, t):
        return min(samples, key=lambda s: abs(s[0] - t))[1]

    lines += ["", "RSS over the load (MB; seconds from its start):", "",
              "| s | " + " | ".join(str(t) for t in grid) + " |", "|---" * (1 + len(grid)) + "|"]
    for name in (FLASK, "inferd"):
        lines.append(f"| {name} | " + " | ".join(f"{at(runs[name]['rss_mb'], t):.0f}" for t in grid) + " |")
    lines += ["", "Commands:", "", "```sh"]
    for name in (FLASK, "inferd"):
        lines.append(f"# {name}: {runs[name]['serve']}")
        lines.append(runs[name]["cmd"])
    lines.append("```")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--factor", type=float, default=3.0)
    args = ap.parse_args()
    runs = {}

    work = Path(tempfile.mkdtemp(prefix="inferd-overload-"))
    model = ROOT / "bench-out" / "mlp-2048.onnx"
    if not model.exists():
        make_mlp(model, 2048)
    shutil.copy(model, work / "mlp.onnx")
    proc, url, cmd = start_inferd(work / "mlp.onnx")
    try:
        target = ["--url", url, "--protocol", "v2-json", "--model", "mlp", "--values", MLP_VALUES]
        body = json.dumps({"inputs": [{"name": "X", "shape": [1, 64], "datatype": "FP32",
                                       "data": [0.5] * 64}]}).encode()
        runs["inferd"] = overload("inferd", proc.pid, target,
                                  lambda: post(url + "/v2/models/mlp/infer", body), args)
        runs["inferd"]["serve"] = " ".join(["inferd", *cmd[1:]]).replace(str(work) + "/", "")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    py = baseline_python(work)
    port = free_port()
    flask = Server(FLASK, [str(py), "-c", f"import app; app.app.run(host='127.0.0.1', port={port})"],
                   port, cwd=work)
    try:
        runs[FLASK] = overload(FLASK, flask.proc.pid, ["--url", flask.base + "/predict"],
                               lambda: post(flask.base + "/predict", SEED_BODY), args)
        runs[FLASK]["serve"] = "python -c 'import app; app.app.run(...)' (the seed's app.py)"
    finally:
        flask.stop()
        shutil.rmtree(work, ignore_errors=True)

    (ROOT / "bench-out").mkdir(exist_ok=True)
    (ROOT / "bench-out" / "overload.json").write_text(json.dumps(runs, indent=1))
    print(render(runs, args))


if __name__ == "__main__":
    main()
