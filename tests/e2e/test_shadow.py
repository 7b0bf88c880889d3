"""Shadow traffic against the real binary: every request that names no version is copied to
version 2 (a different model), callers only ever get version 1's answers, and the metrics count
each copy's outcome, agreeing or not exactly where the two models do."""

import re
import shutil
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
N = 48
# The last two rows are ones where the multinomial logistic fixture and iris.onnx disagree.
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.2, 4.8, 1.8], [6.0, 2.7, 5.1, 1.6]]


def shadow_counts(metrics_url):
    text = requests.get(metrics_url + "/metrics", timeout=5).text
    counts = {}
    for m in re.finditer(r'^inferd_shadow_requests_total\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("model") == "iris":
            assert labels["shadow_version"] == "2", labels
            counts[labels["result"]] = counts.get(labels["result"], 0) + int(float(m.group(2)))
    return counts


def explicit(url, version, row):
    """A request naming its version: never shadowed."""
    r = requests.post(f"{url}/v1/models/iris/versions/{version}:predict", json={"instances": [row]}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["x-inferd-model-version"] == str(version)
    return r.json()["predictions"][0]


def unversioned(url, i, row):
    """The same question through each HTTP API in turn, letting the server pick the version."""
    kind = i % 3
    if kind == 0:
        r = requests.post(f"{url}/predict", json={"inputs": row}, timeout=5)
    elif kind == 1:
        r = requests.post(f"{url}/v1/models/iris:predict", json={"instances": [row]}, timeout=5)
    else:
        body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": row}]}
        r = requests.post(f"{url}/v2/models/iris/infer", json=body, timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["x-inferd-model-version"] == "1"
    body = r.json()
    if kind == 0:
        return body["prediction"][0]
    if kind == 1:
        return body["predictions"][0]
    label = next(o for o in body["outputs"] if o["name"] == "label")
    return label["data"][0]


def test_shadow_copies_unversioned_requests_and_never_answers(tmp_path, start_inferd):
    for version, source in ((1, ROOT / "crates/inferd/assets/iris.onnx"),
                            (2, ROOT / "fixtures/iris_logistic_multinomial/model.onnx")):
        (tmp_path / "iris" / str(version)).mkdir(parents=True)
        shutil.copy(source, tmp_path / "iris" / str(version) / "model.onnx")
    (tmp_path / "iris" / "config.toml").write_text(
        'version_policy = "all"\n[traffic]\nweights = { "1" = 100 }\n[shadow]\nversion = 2\nshare = 1.0\n')
    server = start_inferd("--model-repository", str(tmp_path))

    v1 = [explicit(server.url, 1, row) for row in ROWS]
    v2 = [explicit(server.url, 2, row) for row in ROWS]
    assert v1 != v2, "the two versions must differ somewhere for this test to mean anything"

    expected_disagree = 0
    for i in range(N):
        row = ROWS[i % len(ROWS)]
        assert unversioned(server.url, i, row) == v1[i % len(ROWS)]
        expected_disagree += v1[i % len(ROWS)] != v2[i % len(ROWS)]

    # The worker runs off the request path: poll until it has caught up.
    deadline = time.monotonic() + 15
    counts = {}
    while time.monotonic() < deadline:
        counts = shadow_counts(server.metrics_url)
        if counts.get("agree", 0) + counts.get("disagree", 0) >= N:
            break
        time.sleep(0.05)
    assert counts.get("agree", 0) + counts.get("disagree", 0) == N, counts
    assert counts.get("disagree", 0) == expected_disagree, counts
    assert counts.get("error", 0) == 0 and counts.get("dropped", 0) == 0, counts
