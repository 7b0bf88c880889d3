"""Overload at about 3x capacity (RELIABILITY.md check 3): the excess is shed with 503 and
Retry-After, quickly; memory stays bounded; the server is healthy afterwards."""

import json
import statistics
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

# One request must cost the server milliseconds of inference but almost nothing to read, so
# that capacity is set by the inference thread and a shed answer's cost is the shedding alone
# (with a big body, parsing it would be most of the cost of a refusal). A wide MLP does that:
# ~1M multiply-adds per row, 4 numbers in: 200 rows are tens of ms of work in 5 KB of JSON.
ROWS = 200
BODY = json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] * (ROWS // 2)}).encode()
HEADERS = {"Content-Type": "application/json"}
RUN_SECONDS = 6.0
OVERLOAD = 3.0


@pytest.fixture(scope="module")
def heavy_model(tmp_path_factory):
    """An iris MLP with two 1024-wide hidden layers, as ONNX (made here: a 4 MB file is not
    worth committing)."""
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier

    x, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two iterations do not converge; speed is all we need
        mlp = MLPClassifier(hidden_layer_sizes=(1024, 1024), max_iter=2, random_state=0).fit(x, y)
    onx = to_onnx(mlp, x[:1].astype(np.float32), options={id(mlp): {"zipmap": False}})
    path = tmp_path_factory.mktemp("overload") / "heavy.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def p99(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(0.99 * len(values)))]


def service_time(url: str) -> float:
    """Median time of one request alone: the server's capacity is 1 / this per inference thread."""
    times = []
    with requests.Session() as s:
        for _ in range(15):
            t = time.perf_counter()
            r = s.post(url + "/predict", data=BODY, headers=HEADERS, timeout=30)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text[:200]
    return statistics.median(times[3:])


def test_three_times_capacity_is_shed_fast_with_bounded_memory(start_inferd, heavy_model):
    server = start_inferd(
        "--model", str(heavy_model), "--inference-threads", "1", "--io-threads", "2", "--max-queue", "2"
    )
    pid = server.proc.pid
    base_rss = rss_bytes(pid)
    t_one = service_time(server.url)
    rate = OVERLOAD / t_one  # requests per second offered, open loop
    total = int(rate * RUN_SECONDS)

    results = []  # (status, seconds, retry_after)
    lock = threading.Lock()
    local = threading.local()

    def send():
        s = getattr(local, "session", None) or requests.Session()
        local.session = s
        t = time.perf_counter()
        try:
            r = s.post(server.url + "/predict", data=BODY, headers=HEADERS, timeout=30)
            row = (r.status_code, time.perf_counter() - t, r.headers.get("Retry-After"))
        except requests.RequestException as e:
            row = (repr(e), time.perf_counter() - t, None)
        with lock:
            results.append(row)

    peak_rss = base_rss
    # Enough client threads that the offered rate never waits on a client: every request
    # in flight at 3x capacity, with room to spare.
    with ThreadPoolExecutor(max_workers=64) as pool:
        start = time.perf_counter()
        for i in range(total):
            # Open loop: send on schedule whatever the answers do.
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send)
            if i % 10 == 0:
                peak_rss = max(peak_rss, rss_bytes(pid))
    peak_rss = max(peak_rss, rss_bytes(pid))

    statuses = [r[0] for r in results]
    ok = [r for r in results if r[0] == 200]
    shed = [r for r in results if r[0] == 503]
    other = [r for r in results if r[0] not in (200, 503)]
    shed_times = [r[1] for r in shed] or [0.0]
    summary = (
        f"service {t_one * 1e3:.1f} ms, offered {rate:.0f}/s for {RUN_SECONDS}s: "
        f"{len(ok)} ok, {len(shed)} shed (p50 {statistics.median(shed_times) * 1e3:.1f} ms, "
        f"p99 {p99(shed_times) * 1e3:.1f} ms), peak RSS {peak_rss >> 20} MiB, other {other[:5]}"
    )
    print(summary)
    assert len(results) == total
    assert not other, summary
    assert ok, summary
    # At 3x capacity roughly two thirds must be shed; at least a third is a safe floor.
    assert len(shed) >= total / 3, summary
    assert all(r[2] is not None and int(r[2]) >= 1 for r in shed), "503 without Retry-After"
    # Shed answers are fast: far below the time a served request takes under the same load.
    shed_p99 = p99([r[1] for r in shed])
    ok_median = statistics.median(r[1] for r in ok)
    assert shed_p99 < max(0.1, ok_median), f"shed p99 {shed_p99 * 1e3:.1f} ms; {summary}"
    # Memory is bounded by the queue, not by the offered load.
    assert peak_rss < base_rss + 256 * 2**20, f"RSS grew from {base_rss >> 20} to {peak_rss >> 20} MiB"

    # Healthy afterwards: ready, and answering at normal speed.
    assert requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 200
    t = time.perf_counter()
    r = requests.post(server.url + "/predict", json={"inputs": [5.1, 3.5, 1.4, 0.2]}, timeout=5)
    assert r.status_code == 200 and len(r.json()["prediction"]) == 1
    assert time.perf_counter() - t < 1.0
    assert statuses.count(503) == len(shed)

    # The metrics port agrees with what the client saw.
    text = requests.get(server.metrics_url + "/metrics", timeout=5).text
    queue_full = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("inferd_rejections_total") and 'reason="queue_full"' in line
    ]
    assert queue_full == [len(shed)], (queue_full, len(shed))
