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
