"""Shadow traffic against the real binary: every request is copied to version 2 (a different
model), callers only ever get version 1's answers, and the metrics count each copy's outcome."""

import re
import shutil
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
N = 40


def shadow_counts(metrics_url):
    text = requests.get(metrics_url + "/metrics", timeout=5).text
    counts = {}
    for m in re.finditer(r'^inferd_shadow_requests_total\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("model") == "iris":
            counts[labels["result"]] = counts.get(labels["result"], 0) + float(m.group(2))
    return counts


def test_shadow_copies_every_request_and_never_answers(tmp_path, start_inferd):
    for version, source in ((1, ROOT / "crates/inferd/assets/iris.onnx"),
                            (2, ROOT / "fixtures/iris_logistic_multinomial/model.onnx")):
        (tmp_path / "iris" / str(version)).mkdir(parents=True)
        shutil.copy(source, tmp_path / "iris" / str(version) / "model.onnx")
    (tmp_path / "iris" / "config.toml").write_text(
        'version_policy = "all"\n[traffic]\nweights = { "1" = 100 }\n[shadow]\nversion = 2\nshare = 1.0\n')
    server = start_inferd("--model-repository", str(tmp_path))
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.8, 5.1, 1.5]]
    for i in range(N):
        r = requests.post(server.url + "/predict", json={"inputs": rows[i % len(rows)]}, timeout=5)
        assert r.status_code == 200, r.text
        assert r.headers["x-inferd-model-version"] == "1"
    deadline = time.monotonic() + 10
    counts = {}
    while time.monotonic() < deadline:
        counts = shadow_counts(server.metrics_url)
        if counts.get("agree", 0) + counts.get("disagree", 0) >= N:
            break
        time.sleep(0.05)
    assert counts.get("agree", 0) + counts.get("disagree", 0) == N, counts
    assert counts.get("error", 0) == 0 and counts.get("dropped", 0) == 0, counts
