#!/usr/bin/env python3
"""Side-by-side benchmark of the seed's Flask server and inferd, in one run, with wrk.

Measures, for each server: time from exec to the first answered /predict, idle RSS, and
single-row /predict throughput and latency at 1 and 64 connections. Prints a Markdown table
with inferd/Flask ratios.

    .venv/bin/python scripts/bench_seed.py [--duration 10] [--out bench-out/seed.md]

Needs: wrk (Debian), target/release/inferd, and a venv for the baseline (made here on first use
in bench-out/baseline-venv from ../shared/baseline/requirements.txt).
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT.parent / "shared" / "baseline"
BODY = json.dumps({"inputs": [5.1, 3.5, 1.4, 0.2]})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, timeout=1.0):
    req = urllib.request.Request(url, data=BODY.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def start_and_time_first_answer(cmd, url, cwd=None, env=None, timeout=60):
    """Starts cmd and polls url; returns (process, seconds from exec to the first 200)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - t0 < timeout:
        try:
            post(url, timeout=0.5)
            return proc, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            time.sleep(0.0005)
    proc.kill()
    raise RuntimeError(f"{cmd} never answered")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wrk(url, connections, duration):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(
        'wrk.method = "POST"\n'
        f"wrk.body = '{BODY}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    script.close()
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def baseline_python(work):
    venv = ROOT / "bench-out" / "baseline-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(BASELINE / "requirements.txt")], check=True)
    for name in ("app.py", "train_model.py"):
        shutil.copy(BASELINE / name, work / name)
    subprocess.run([str(py), "train_model.py"], cwd=work, check=True)
    return py


def measure(name, cmd, port, duration, cwd=None, env=None):
    url = f"http://127.0.0.1:{port}/predict"
    proc, first = start_and_time_first_answer(cmd, url, cwd=cwd, env=env)
    try:
        time.sleep(0.5)
        idle = rss_mb(proc.pid)
        results = {"name": name, "first_answer_ms": first * 1e3, "idle_rss_mb": idle}
        for c in (1, 64):
            results[c] = wrk(url, c, duration)
        results["loaded_rss_mb"] = rss_mb(proc.pid)
        return results
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "seed.md"))
    ap.add_argument("--inferd", default=str(ROOT / "target" / "release" / "inferd"))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="inferd-bench-"))
    py = baseline_python(work)
    flask_port = free_port()
    # The seed's app.py hard-codes port 5000; run it through Flask's own runner on a free port
    # instead, with the same app object and the same threaded development server.
    flask_cmd = [str(py), "-c",
                 f"import app; app.app.run(host='127.0.0.1', port={flask_port})"]
    flask = measure("Flask (seed)", flask_cmd, flask_port, args.duration, cwd=work)

    port = free_port()
    inferd_cmd = [args.inferd, "serve", "--host", "127.0.0.1", "--http-port", str(port), "--shutdown-delay", "0"]
    if "--metrics-port" in subprocess.run([args.inferd, "serve", "--help"], capture_output=True, text=True).stdout:
        inferd_cmd += ["--metrics-port", str(free_port()), "--grpc-port", str(free_port())]
    ours = measure("inferd", inferd_cmd, port, args.duration)

    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"load and servers share the machine. wrk {args.duration}s per row, single-row `/predict`.",
        "",
        "| metric | Flask (seed) | inferd | inferd / Flask |",
        "|---|---:|---:|---:|",
    ]

    def row(label, a, b, fmt, better="higher"):
        ratio = b / a if better == "higher" else a / b
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio:,.1f}× |")

    for c in (1, 64):
        row(f"requests/s, {c} connection{'s' if c > 1 else ''}", flask[c]["rps"], ours[c]["rps"], "{:,.0f}")
        row(f"p50 latency, {c} conn. (ms)", flask[c]["p50_ms"], ours[c]["p50_ms"], "{:.3f}", "lower")
        row(f"p99 latency, {c} conn. (ms)", flask[c]["p99_ms"], ours[c]["p99_ms"], "{:.3f}", "lower")
    row("idle RSS (MB)", flask["idle_rss_mb"], ours["idle_rss_mb"], "{:.1f}", "lower")
    row("RSS after load (MB)", flask["loaded_rss_mb"], ours["loaded_rss_mb"], "{:.1f}", "lower")
    row("exec → first answer (ms)", flask["first_answer_ms"], ours["first_answer_ms"], "{:.1f}", "lower")
    errs = [(r["name"], c, r[c]["non2xx"], r[c]["socket_errors"]) for r in (flask, ours) for c in (1, 64)]
    lines.append("")
    lines.append("Errors (non-2xx, socket): " + "; ".join(f"{n} c={c}: {e} {s}".strip() for n, c, e, s in errs))
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps({"flask": flask, "inferd": ours}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
