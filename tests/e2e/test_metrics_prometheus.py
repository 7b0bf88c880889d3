"""A real Prometheus scrapes inferd's metrics port; PromQL through Prometheus's HTTP API must
return exactly the traffic this test sent (N good requests, M bad ones), and the gauges the
issue asks for must be there."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
GOOD = {"inputs": [5.1, 3.5, 1.4, 0.2]}
N_OK = 25
N_BAD = 7


class Prometheus:
    """A throw-away Prometheus scraping one target every second."""

    def __init__(self, target: str):
        self.dir = tempfile.TemporaryDirectory(prefix="inferd-prom-")
        config = Path(self.dir.name) / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 900ms\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: inferd\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={Path(self.dir.name) / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait(lambda: requests.get(self.url + "/-/ready", timeout=1).status_code == 200, "ready")

    def _wait(self, check, what, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                if check():
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus: not {what} within {timeout}s")

    def query(self, promql: str) -> dict:
        """Instant query → {frozenset(labels.items()): value}."""
        r = requests.get(self.url + "/api/v1/query", params={"query": promql}, timeout=5)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        return {frozenset(s["metric"].items()): float(s["value"][1]) for s in body["data"]["result"]}

    def wait_for(self, promql: str, expected: dict, timeout=30.0):
        """Polls until `promql` returns `expected` (label set → value); scrapes are every 1 s."""
        last = {}

        def check():
            nonlocal last
            last = self.query(promql)
            return last == expected

        try:
            self._wait(check, f"{promql} == {expected}", timeout)
        except AssertionError:
            raise AssertionError(f"{promql}: expected {expected}, last got {last}") from None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()


@pytest.fixture
def prometheus_for():
    started = []

    def start(server):
        p = Prometheus(server.metrics_url.removeprefix("http://"))
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def test_prometheus_sees_exactly_the_requests_sent(start_inferd, prometheus_for):
    assert Path(PROMETHEUS).exists(), "Debian package `prometheus` not installed (.ci/run installs it)"
    server = start_inferd()
    prom = prometheus_for(server)
    prom.wait_for('sum(up{job="inferd"})', {frozenset(): 1.0})

    with requests.Session() as s:
        for _ in range(N_OK):
            r = s.post(server.url + "/predict", json=GOOD, timeout=5)
            assert r.status_code == 200, r.text
        for i in range(N_BAD):
            # Four features are expected; every one of these has a wrong count.
            r = s.post(server.url + "/predict", json={"inputs": [1.0] * (i % 3 + 1)}, timeout=5)
            assert r.status_code == 400, r.text

    prom.wait_for(
        'sum by (status) (inferd_requests_total{job="inferd"})',
        {frozenset({"status": "ok"}.items()): N_OK, frozenset({"status": "bad_request"}.items()): N_BAD},
    )
    # The duration histogram counts the same requests, all of them over HTTP (the front end
    # may name its APIs apart: `http_seed`, `http_v2`...).
    prom.wait_for('sum(inferd_request_duration_seconds_count{job="inferd"})', {frozenset(): N_OK + N_BAD})
    protocols = prom.query('sum by (protocol) (inferd_requests_total{job="inferd"})')
    assert all(dict(k)["protocol"].startswith("http") for k in protocols), protocols
    # Good requests all ran the model: one model call each (batching is off for iris).
    prom.wait_for(
        'sum(inferd_inference_duration_seconds_count{job="inferd"}) >= bool ' + str(N_OK),
        {frozenset(): 1.0},
    )
    # Nothing is left in flight, and nothing was shed.
    prom.wait_for('sum(inferd_inflight_requests{job="inferd"})', {frozenset(): 0.0})
    assert prom.query('sum(inferd_rejections_total{job="inferd"})') == {frozenset(): 0.0}

    # A quantile over the explicit sub-millisecond buckets is computable (and finite).
    p99 = prom.query(
        'histogram_quantile(0.99, sum by (le) (inferd_request_duration_seconds_bucket{job="inferd"}))'
    )
    assert len(p99) == 1 and 0 < next(iter(p99.values())) < 10

    ready = prom.query('inferd_model_state{job="inferd",state="ready"}')
    assert [dict(k)["model"] for k, v in ready.items() if v == 1.0] == ["iris"], ready
    # Process gauges (CPU is counted in whole seconds by the collector, so it may still be 0).
    for name, floor in [
        ("inferd_process_resident_memory_bytes", 1),
        ("inferd_process_open_fds", 1),
        ("inferd_process_cpu_seconds_total", 0),
    ]:
        values = prom.query(f'{name}{{job="inferd"}}')
        assert len(values) == 1 and next(iter(values.values())) >= floor, (name, values)


def test_exposition_uses_one_prefix_and_seconds(start_inferd):
    server = start_inferd()
    # Request series appear with the first request.
    assert requests.post(server.url + "/predict", json=GOOD, timeout=5).status_code == 200
    text = requests.get(server.metrics_url + "/metrics", timeout=5).text
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert names, text[:500]
    assert all(n.startswith("inferd_") for n in names), sorted(n for n in names if not n.startswith("inferd_"))
    for n in names:
        if "duration" in n or "latency" in n:
            assert n.endswith("_seconds"), n
    for required in [
        "inferd_requests_total",
        "inferd_request_duration_seconds",
        "inferd_queue_duration_seconds",
        "inferd_inference_duration_seconds",
        "inferd_batch_size",
        "inferd_inflight_requests",
        "inferd_queue_depth",
        "inferd_rejections_total",
        "inferd_model_state",
        "inferd_model_load_seconds",
        "inferd_process_resident_memory_bytes",
    ]:
        assert required in names, required
    # Sub-millisecond buckets: inferd answers small models in tens of microseconds.
    assert 'le="0.000025"' in text
