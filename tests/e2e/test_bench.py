"""`inferd bench` against a live inferd: its numbers agree with wrk's on the same server and
load, it drives every protocol inferd serves and writes the JSON report, and it exits non-zero
when it should."""

import json
import os
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from conftest import free_port, inferd_bin

IRIS_ROW = "5.1,3.5,1.4,0.2"


def bench_cmd():
    """`inferd bench`; before the binary had the subcommand, $INFERD_BENCH_BIN (the
    inferd-bench crate's `bench` example, the same flags) stood in for it."""
    probe = subprocess.run([inferd_bin(), "bench", "--help"], capture_output=True, text=True)
    if probe.returncode == 0 and "--concurrency" in probe.stdout:
        return [inferd_bin(), "bench"]
    stand_in = os.environ.get("INFERD_BENCH_BIN")
    if stand_in:
        return [stand_in]
    raise RuntimeError(f"{inferd_bin()} has no `bench` subcommand (and INFERD_BENCH_BIN is unset)")


def run_bench(*args, check=True):
    """Runs the generator; returns (exit code, JSON report or None, stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        proc = subprocess.run([*bench_cmd(), "--quiet", "--json-out", str(out), *args],
                              capture_output=True, text=True, timeout=300)
        report = json.loads(out.read_text()) if out.exists() else None
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc.returncode, report, proc.stderr


def wrk(url, body_file, connections, seconds):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'local f = io.open("{body_file}", "r")\nwrk.method = "POST"\nwrk.body = f:read("*a")\n'
                     'f:close()\nwrk.headers["Content-Type"] = "application/json"\n')
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                              "-s", script.name, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p50 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    return rps, p50


def test_agrees_with_wrk_on_requests_per_second_and_median(inferd, tmp_path):
    # Same server, same request, same connections, one generator thread each. The request is a
    # 256-row batch, so each answer takes the server about a millisecond: what is compared is
    # the two tools' measurement of the server, not their own per-request costs of a few
    # microseconds (which, on 2 cores shared with the server, would move the numbers). Runs
    # alternate so that drifts in machine load hit both, and the median of seven rounds' ratios
    # is compared.
    rows = [[4.0 + (i % 40) / 10, 2.0 + (i % 25) / 10, 1.0 + (i % 60) / 10, 0.1 + (i % 24) / 10]
            for i in range(256)]
    body = tmp_path / "batch.json"
    body.write_text(json.dumps({"inputs": rows}))
    url = inferd.url + "/predict"
    connections, seconds = 2, 3
    wrk(url, body, connections, 1)  # warm the server the same way before either is measured
    ours, theirs = [], []
    def bench_once():
        _, report, _ = run_bench("--url", url, "--body", str(body), "--concurrency", str(connections),
                                 "--threads", "1", "--duration", f"{seconds}s", "--warmup", "0")
        ours.append((report["rps"], report["latency_ms"]["p50"]))

    for round_ in range(7):
        # Which tool goes first alternates too, so that neither always meets a warmer server.
        if round_ % 2:
            bench_once()
            theirs.append(wrk(url, body, connections, seconds))
        else:
            theirs.append(wrk(url, body, connections, seconds))
            bench_once()
    # Each round's two runs are seconds apart; their ratio cancels the machine's slower drifts.
    rps_ratio = statistics.median(o[0] / t[0] for o, t in zip(ours, theirs))
    p50_ratio = statistics.median(o[1] / t[1] for o, t in zip(ours, theirs))
    detail = f"inferd bench (rps, p50 ms) {ours} vs wrk {theirs}"
    assert 0.9 <= rps_ratio <= 1.1, f"requests/s ratio {rps_ratio:.3f}: {detail}"
    assert 0.9 <= p50_ratio <= 1.1, f"p50 ratio {p50_ratio:.3f}: {detail}"


LATENCY_KEYS = {"count", "min", "mean", "stdev", "p50", "p75", "p90", "p99", "p99.9", "max"}


def check_report(report, protocol, requests):
    assert report["config"]["protocol"] == protocol
    assert report["config"]["mode"] == "closed"
    assert report["requests"] == requests
    assert report["ok"] == requests, report["errors_by_kind"]
    assert report["errors"] == 0 and report["error_rate"] == 0 and report["errors_by_kind"] == {}
    assert report["passed"] is True and report["interrupted"] is False
    assert report["rps"] > 0 and report["ok_rps"] > 0 and report["elapsed_s"] > 0
    latency = report["latency_ms"]
    assert set(latency) == LATENCY_KEYS
    assert latency["count"] == requests
    assert 0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p99.9"] <= latency["max"]
    assert report["send_lag_ms"] is None


@pytest.mark.parametrize("protocol", ["seed", "v2-json", "v2-binary", "v1"])
@pytest.mark.parametrize("values", [True, False], ids=["given", "random"])
def test_each_http_protocol(inferd, protocol, values):
    args = ["--url", inferd.url, "--protocol", protocol, "--model", "iris",
            "--requests", "200", "--concurrency", "4", "--warmup", "0"]
    if values:
        args += ["--values", IRIS_ROW]
    _, report, _ = run_bench(*args)
    check_report(report, protocol, 200)
    assert ("given" in report["config"]["body"]) == values


def test_grpc(inferd):
    _, report, _ = run_bench("--url", f"http://{inferd.grpc_url}", "--protocol", "v2-grpc", "--model", "iris",
                             "--requests", "200", "--concurrency", "8", "--grpc-connections", "2", "--warmup", "0")
    check_report(report, "v2-grpc", 200)
    assert report["config"]["grpc_connections"] == 2


def test_body_file_and_batches(inferd, tmp_path):
    name = requests.get(inferd.url + "/v2/models/iris", timeout=5).json()["inputs"][0]["name"]
    body = tmp_path / "v2.json"
    body.write_text(json.dumps({"inputs": [{"name": name, "shape": [2, 4], "datatype": "FP32",
                                            "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}]}))
    _, report, _ = run_bench("--url", inferd.url, "--protocol", "v2-binary", "--model", "iris",
                             "--body", str(body), "--requests", "50", "--warmup", "0")
    check_report(report, "v2-binary", 50)
    _, report, _ = run_bench("--url", inferd.url + "/predict", "--batch-size", "8", "--requests", "50", "--warmup", "0")
    check_report(report, "seed", 50)


def test_open_loop_reports_send_lag(inferd):
    _, report, _ = run_bench("--url", inferd.url + "/predict", "--rate", "500", "--duration", "2s",
                             "--concurrency", "16", "--warmup", "0")
    assert report["config"]["mode"] == "open" and report["config"]["rate"] == 500
    assert 850 <= report["requests"] <= 1050, report["requests"]
    assert set(report["send_lag_ms"]) == LATENCY_KEYS


def test_errors_past_the_threshold_exit_1(inferd, tmp_path):
    body = tmp_path / "bad.json"
    body.write_text('{"inputs": [1, 2]}')  # the seed's /predict answers 400
    code, report, stderr = run_bench("--url", inferd.url + "/predict", "--body", str(body),
                                     "--requests", "20", "--warmup", "0", check=False)
    assert code == 1, stderr
    assert report["errors_by_kind"] == {"http_400": 20} and report["passed"] is False
    assert "max-error-rate" in stderr


def test_unreachable_target_and_bad_arguments():
    code, report, stderr = run_bench("--url", f"http://127.0.0.1:{free_port()}/predict", "--duration", "1s", check=False)
    assert code == 69 and report is None and "cannot connect" in stderr
    code, _, stderr = run_bench("--url", "https://example.invalid/predict", check=False)
    assert code == 64 and "https" in stderr
    code, _, stderr = run_bench("--protocol", "v2-json", check=False)
    assert code == 64 and "--model" in stderr


def test_progress_line_when_not_a_tty(inferd):
    proc = subprocess.run([*bench_cmd(), "--url", inferd.url + "/predict", "--duration", "2s", "--warmup", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if "req/s" in l]
    assert 1 <= len(lines) <= 3, proc.stderr  # one plain line a second, no escape codes
    assert "\x1b" not in proc.stderr
    assert "throughput" in proc.stdout and "p99.9" in proc.stdout
