"""The seed tutorial's request, exactly as its readers send it, against the real binary."""

import json
import subprocess
from pathlib import Path

import requests

SEED_BODY = {"inputs": [5.1, 3.5, 1.4, 0.2]}


def test_seed_curl_returns_prediction_zero(inferd):
    # The tutorial's step 5, with curl itself.
    out = subprocess.run(
        ["curl", "-s", "-X", "POST", inferd.url + "/predict",
         "-H", "Content-Type: application/json", "-d", json.dumps(SEED_BODY)],
        capture_output=True, text=True, check=True,
    ).stdout
    assert json.loads(out) == {"prediction": [0]}


def test_batch_and_probabilities(inferd):
    body = {"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], "probabilities": True}
    r = requests.post(inferd.url + "/predict", json=body, timeout=5)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["prediction"] == [0, 2]
    assert len(answer["probabilities"]) == 2
    for row in answer["probabilities"]:
        assert abs(sum(row) - 1.0) < 1e-5


def test_malformed_requests_are_400_with_a_message(inferd):
    cases = [
        b"not json",
        b"{}",
        b'{"inputs": []}',
        b'{"inputs": [1, 2, 3]}',
        b'{"inputs": ["a", "b", "c", "d"]}',
        b'{"inputs": [[1, 2, 3, 4], [1, 2]]}',
    ]
    for body in cases:
        r = requests.post(inferd.url + "/predict", data=body,
                          headers={"Content-Type": "application/json"}, timeout=5)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.json()["error"], body
    # still serving
    assert requests.post(inferd.url + "/predict", json=SEED_BODY, timeout=5).json() == {"prediction": [0]}


def test_oversized_body_is_413(start_inferd):
    server = start_inferd("--max-body-bytes", "1024")
    r = requests.post(server.url + "/predict", data=b"[" * 5000,
                      headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 413


def test_sigterm_exits_zero(start_inferd):
    server = start_inferd()
    assert server.stop() == 0


def test_a_single_model_is_served_as_the_version_it_is_deployed_as(start_inferd):
    """--model-version: a canary's two arms, each one file, tell themselves apart everywhere."""
    server = start_inferd("--model-version", "3")
    r = requests.post(server.url + "/predict", json=SEED_BODY, timeout=5)
    assert r.json() == {"prediction": [0]}
    assert r.headers["x-inferd-model-version"] == "3"
    assert requests.get(server.url + "/v2/models/iris", timeout=5).json()["versions"] == ["3"]
    v2 = requests.post(server.url + "/v2/models/iris/infer", timeout=5, json={
        "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": SEED_BODY["inputs"]}]})
    assert v2.json()["model_version"] == "3", v2.text
    assert requests.get(server.url + "/v2/models/iris/versions/3/ready", timeout=5).status_code == 200
    metrics = requests.get(server.metrics_url + "/metrics", timeout=5).text
    assert 'inferd_requests_total{model="iris",protocol="http_seed",status="ok",version="3"} 1' in metrics
