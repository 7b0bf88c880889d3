#!/usr/bin/env python3
"""The driver behind scripts/bench-report: the seed's Flask server and inferd, the same loads
against both in one run with `inferd bench`, written into docs/benchmarks.md (between the
`<!-- bench-report:begin -->` and `<!-- bench-report:end -->` markers, so the rest of the file
is kept) and docs/benchmarks.png.

Run it through scripts/bench-report, which builds the binaries first. Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT.parent / "shared" / "baseline"
SEED_BODY = json.dumps({"inputs": [5.1, 3.5, 1.4, 0.2]}).encode()
BEGIN, END = "<!-- bench-report:begin -->", "<!-- bench-report:end -->"
FLASK, INFERD = "Flask (seed)", "inferd"


def log(msg):
    print(f"=== {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """A server process, timed from exec to its first answered /predict."""

    def __init__(self, name, cmd, port, cwd=None, timeout=60):
        self.name, self.cmd, self.port = name, cmd, port
        self.base = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        # The servers log every request: to a file, since an unread pipe would fill and stall them.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        while True:
            try:
                req = urllib.request.Request(self.base + "/predict", data=SEED_BODY,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=0.5) as r:
                    r.read()
                break
            except (OSError, urllib.error.URLError):
                if self.proc.poll() is not None:
                    self.log.seek(0)
                    raise RuntimeError(f"{name} exited with {self.proc.returncode}: "
                                       f"{self.log.read().decode(errors='replace')[-2000:]}")
                if time.perf_counter() - t0 > timeout:
                    self.stop()
                    raise RuntimeError(f"{name} did not answer /predict within {timeout}s")
                time.sleep(0.0005)
        self.first_answer_ms = (time.perf_counter() - t0) * 1e3
        time.sleep(1.0)
        self.idle_rss_mb = rss_mb(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench_command(args):
    """`inferd bench` when the binary has it, else the stand-alone example with the same flags."""
    probe = subprocess.run([args.inferd, "bench", "--help"], capture_output=True, text=True)
    if probe.returncode == 0 and "--concurrency" in probe.stdout:
        return [args.inferd, "bench"], "inferd bench"
    if not os.path.exists(args.bench_example):
        sys.exit(f"{args.inferd} has no `bench` subcommand and {args.bench_example} is missing")
    return [args.bench_example], "inferd-bench (example `bench`, same flags as `inferd bench`)"


def run_load(bench, server, protocol, connections, args, extra=()):
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    url = server.base + ("/predict" if protocol == "seed" else "")
    if protocol == "v2-grpc":
        url = f"http://127.0.0.1:{server.grpc_port}"
    flags = ["--url", url, "--protocol", protocol, "--concurrency", str(connections),
             "--duration", f"{args.duration}s", "--warmup", f"{args.warmup}s", "--threads", "1",
             "--max-error-rate", "1", "--quiet", "--json-out", str(out), *extra]
    if protocol != "seed":
        flags += ["--model", "iris", "--values", "5.1,3.5,1.4,0.2"]
    cmd = [*bench, *flags]
    log(f"{server.name}: {protocol}, {connections} connection(s)")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    report = json.loads(out.read_text())
    out.unlink()
    # As a reader would type it: without the temporary report file.
    i = flags.index("--json-out")
    shown = ["inferd", "bench", *flags[:i], *flags[i + 2:]]
    return {"cmd": " ".join(shlex.quote(c) for c in shown), "report": report}


def baseline_python(work):
    venv = ROOT / "bench-out" / "baseline-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        log("baseline venv (first run only)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(BASELINE / "requirements.txt")], check=True)
    for name in ("app.py", "train_model.py"):
        shutil.copy(BASELINE / name, work / name)
    subprocess.run([str(py), "train_model.py"], cwd=work, check=True)
    return py


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0]
    return (f"{cpu}, {os.cpu_count()} logical cores{mem}, {platform.system()} {platform.release()}; "
            f"load average {load:.1f} at the start of the run")


def git_commit():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (r.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def fmt_ms(v):
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def render(flask, ours, seed_runs, only_runs, args, bench_name):
    lines = [BEGIN, "",
             f"_Generated by `scripts/bench-report` on {datetime.date.today().isoformat()}, "
             f"commit {git_commit()}. Do not edit between the markers: the next run rewrites it._", "",
             f"**Machine:** {machine()}. Servers and load generator share the machine; the generator "
             f"runs on one thread. Each load: {args.warmup}s warm-up, then {args.duration}s measured, "
             f"closed loop, one kept-alive HTTP/1.1 connection per worker (gRPC: one HTTP/2 "
             f"connection). Load generator: {bench_name}.", "",
             "### The seed's `/predict`, one row", "",
             "| load | metric | Flask (seed) | inferd | inferd vs Flask |",
             "|---|---|---:|---:|---:|"]
    for c in (1, args.connections):
        a, b = seed_runs[(FLASK, c)]["report"], seed_runs[(INFERD, c)]["report"]
        load = f"{c} connection{'s' if c > 1 else ''}"
        lines.append(f"| {load} | requests/s | {a['rps']:,.0f} | {b['rps']:,.0f} | **{b['rps'] / max(a['rps'], 1e-9):,.1f}× more** |")
        for p in ("p50", "p99", "p99.9"):
            x, y = a["latency_ms"][p], b["latency_ms"][p]
            lines.append(f"| {load} | {p} latency (ms) | {fmt_ms(x)} | {fmt_ms(y)} | {x / max(y, 1e-9):,.1f}× lower |")
        lines.append(f"| {load} | errors | {a['errors']} | {b['errors']} | |")
    lines += [
        f"| idle | RSS (MB) | {flask.idle_rss_mb:.1f} | {ours.idle_rss_mb:.1f} | {flask.idle_rss_mb / ours.idle_rss_mb:,.1f}× smaller |",
        f"| after load | RSS (MB) | {flask.loaded_rss_mb:.1f} | {ours.loaded_rss_mb:.1f} | {flask.loaded_rss_mb / ours.loaded_rss_mb:,.1f}× smaller |",
        f"| start | exec → first answer (ms) | {flask.first_answer_ms:.0f} | {ours.first_answer_ms:.0f} | {flask.first_answer_ms / ours.first_answer_ms:,.1f}× sooner |",
        "", f"### inferd's other protocols, {args.connections} connections, iris, one row", "",
        "| protocol | requests/s | p50 (ms) | p90 (ms) | p99 (ms) | p99.9 (ms) | errors | vs seed `/predict` |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = seed_runs[(INFERD, args.connections)]["report"]["rps"]
    for proto, run in [("seed `/predict`", seed_runs[(INFERD, args.connections)]), *only_runs]:
        r = run["report"]
        l = r["latency_ms"]
        lines.append(f"| {proto} | {r['rps']:,.0f} | {fmt_ms(l['p50'])} | {fmt_ms(l['p90'])} | {fmt_ms(l['p99'])} "
                     f"| {fmt_ms(l['p99.9'])} | {r['errors']} | {r['rps'] / max(base, 1e-9):.2f}× |")
    lines += ["", "![Throughput and latency percentiles](benchmarks.png)", "",
              "### Exact commands", "",
              "Regenerate everything with `scripts/bench-report` (add `--duration 30` for steadier numbers). "
              "It ran these (ports are free ones picked at run time):", "", "```sh",
              f"# Flask (seed), from a copy of ../shared/baseline after `python train_model.py`:",
              " ".join(shlex.quote(c) for c in ["python", *flask.cmd[1:]]),
              "# inferd (target/release/inferd):",
              " ".join(shlex.quote(c) for c in ["inferd", *ours.cmd[1:]])]
    for key in ((FLASK, 1), (FLASK, args.connections), (INFERD, 1), (INFERD, args.connections)):
        lines.append(seed_runs[key]["cmd"])
    for _, run in only_runs:
        lines.append(run["cmd"])
    lines += ["```", "",
              "Idle RSS is read from `/proc/PID/status` one second after the first answer; "
              "exec → first answer polls `POST /predict` every 0.5 ms from `exec`. Numbers on a "
              "shared 2-core machine move by ±10–20% between runs; the ratios are steadier.", "", END]
    return "\n".join(lines) + "\n"


def write_section(path, section):
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nHow inferd compares with the seed's Flask server, measured with "
        "`inferd bench` ([load testing](loadtest.md)).\n\n")
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n## Measured by scripts/bench-report\n\n" + section
    path.write_text(text)


def chart(args, seed_runs, only_runs):
    series = []
    for (server, c), run in sorted(seed_runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        series.append((f"{'Flask' if server == FLASK else 'inferd'} /predict c={c}", server, run))
    for proto, run in only_runs:
        series.append((f"inferd {proto.replace('REST ', '')} c={args.connections}", INFERD, run))
    summary = {"title": "inferd vs the seed's Flask server (iris, one row per request)",
               "series": [{"label": label, "server": server, "rps": run["report"]["rps"],
                           **{p: run["report"]["latency_ms"][p] for p in ("p50", "p90", "p99", "p99.9")}}
                          for label, server, run in series]}
    path = ROOT / "bench-out" / "chart.json"
    path.write_text(json.dumps(summary, indent=1))
    subprocess.run([args.chart, str(path), str(args.png)], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10, help="measured seconds per load")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--inferd", default=str(ROOT / "target" / "release" / "inferd"))
    ap.add_argument("--bench-example", default=str(ROOT / "target" / "release" / "examples" / "bench"))
    ap.add_argument("--chart", default=str(ROOT / "target" / "release" / "examples" / "bench_chart"))
    ap.add_argument("--md", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "benchmarks.png")
    args = ap.parse_args()
    (ROOT / "bench-out").mkdir(exist_ok=True)
    bench, bench_name = bench_command(args)

    work = Path(tempfile.mkdtemp(prefix="inferd-bench-report-"))
    py = baseline_python(work)
    seed_runs, only_runs = {}, []

    port = free_port()
    # The seed's app.py hard-codes port 5000; run the same app object with Flask's same
    # (threaded) development server on a free port instead.
    flask = Server(FLASK, [str(py), "-c", f"import app; app.app.run(host='127.0.0.1', port={port})"], port, cwd=work)
    try:
        for c in (1, args.connections):
            seed_runs[(FLASK, c)] = run_load(bench, flask, "seed", c, args)
        flask.loaded_rss_mb = rss_mb(flask.proc.pid)
    finally:
        flask.stop()

    port, grpc_port = free_port(), free_port()
    cmd = [args.inferd, "serve", "--host", "127.0.0.1", "--http-port", str(port), "--shutdown-delay", "0"]
    serve_help = subprocess.run([args.inferd, "serve", "--help"], capture_output=True, text=True).stdout
    if "--grpc-port" in serve_help:
        cmd += ["--grpc-port", str(grpc_port)]
    if "--metrics-port" in serve_help:
        cmd += ["--metrics-port", str(free_port())]
    ours = Server(INFERD, cmd, port)
    ours.grpc_port = grpc_port
    try:
        for c in (1, args.connections):
            seed_runs[(INFERD, c)] = run_load(bench, ours, "seed", c, args)
        for proto, name in (("v2-json", "V2 REST JSON"), ("v2-binary", "V2 REST binary"), ("v2-grpc", "V2 gRPC")):
            if proto == "v2-grpc" and "--grpc-port" not in serve_help:
                log("inferd serve has no --grpc-port yet: skipping gRPC")
                continue
            try:
                only_runs.append((name, run_load(bench, ours, proto, args.connections, args)))
            except subprocess.CalledProcessError as e:
                log(f"{name} failed (exit {e.returncode}): left out of the report")
        ours.loaded_rss_mb = rss_mb(ours.proc.pid)
    finally:
        ours.stop()
    shutil.rmtree(work, ignore_errors=True)

    section = render(flask, ours, seed_runs, only_runs, args, bench_name)
    write_section(args.md, section)
    chart(args, seed_runs, only_runs)
    (ROOT / "bench-out" / "report.json").write_text(json.dumps(
        {f"{k[0]} c={k[1]}": v for k, v in seed_runs.items()} | {k: v for k, v in only_runs}, indent=1))
    print(section)
    log(f"wrote {args.md} and {args.png}")


if __name__ == "__main__":
    main()
