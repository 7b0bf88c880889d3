"""Issue 7 end to end: hot reload under load, corrupt versions, traffic split, sticky keys,
the management API's authentication, and memory over many reload cycles — all against the
real binary with a real model repository on disk."""

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import MANAGEMENT_TOKEN as TOKEN
from conftest import rss_mb
from conftest import start_with_repository as start

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "crates" / "inferd" / "assets" / "iris.onnx"
ROW = [5.1, 3.5, 1.4, 0.2]


def v2_body():
    return {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}


def input_name(server, model="iris"):
    meta = requests.get(f"{server.url}/v2/models/{model}", timeout=5).json()
    return meta["inputs"][0]["name"]


def infer_version(server, model="iris", headers=None, name="X"):
    body = v2_body()
    body["inputs"][0]["name"] = name
    r = requests.post(f"{server.url}/v2/models/{model}/infer", json=body, headers=headers or {}, timeout=5)
    r.raise_for_status()
    return r.json()["model_version"]


def put_version(repo, version, source=MODEL):
    d = repo / "iris" / str(version)
    d.mkdir(parents=True, exist_ok=True)
    # Write under another name, then rename: a half-written model.onnx is never seen.
    tmp = d / ".model.onnx.tmp"
    shutil.copy(source, tmp)
    os.replace(tmp, d / "model.onnx")


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "iris").mkdir()
    put_version(tmp_path, 1)
    return tmp_path


def test_reload_under_load_drops_nothing(start_inferd, repo):
    server = start(start_inferd, repo)
    name = input_name(server)
    stop = threading.Event()
    results = {"ok": 0, "failed": 0, "versions": set(), "errors": []}

    def load():
        session = requests.Session()
        while not stop.is_set():
            try:
                body = v2_body()
                body["inputs"][0]["name"] = name
                r = session.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=5)
                if r.status_code == 200:
                    results["ok"] += 1
                    results["versions"].add(r.json()["model_version"])
                else:
                    results["failed"] += 1
                    results["errors"].append(r.text)
                # the seed's API goes through the same swap
                r = session.post(f"{server.url}/predict", json={"inputs": ROW}, timeout=5)
                if r.status_code == 200 and r.json() == {"prediction": [0]}:
                    results["ok"] += 1
                else:
                    results["failed"] += 1
                    results["errors"].append(r.text)
            except requests.RequestException as e:
                results["failed"] += 1
                results["errors"].append(str(e))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.5)
        put_version(repo, 2)  # default policy latest 1: 2 comes in, 1 leaves
        assert wait_for(lambda: infer_version(server, name=name) == "2")
        shutil.rmtree(repo / "iris" / "1")
        put_version(repo, 3)
        assert wait_for(lambda: infer_version(server, name=name) == "3")
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert results["failed"] == 0, results["errors"][:5]
    assert results["ok"] > 100
    assert {"1", "2", "3"} <= results["versions"]


def test_corrupt_version_keeps_the_old_one_and_is_visible(start_inferd, repo):
    server = start(start_inferd, repo)
    name = input_name(server)
    bad = repo / "iris" / "2"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(b"\x08\x07 this is not an onnx file" * 10)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def reported():
        index = requests.post(f"{server.management_url}/v2/repository/index", json={}, headers=auth, timeout=5).json()
        return [e for e in index if e.get("version") == "2" and e["state"] == "UNAVAILABLE" and e["reason"]]

    assert wait_for(lambda: bool(reported()))
    assert str(repo) not in reported()[0]["reason"], "errors must not leak paths"
    for _ in range(20):
        assert infer_version(server, name=name) == "1"
    assert requests.post(f"{server.url}/predict", json={"inputs": ROW}, timeout=5).json() == {"prediction": [0]}


def test_traffic_split_and_sticky_keys(start_inferd, repo):
    put_version(repo, 2)
    (repo / "iris" / "config.toml").write_text(
        'version_policy = "all"\n[traffic]\nweights = { "1" = 90, "2" = 10 }\nsticky_header = "x-user"\n'
    )
    server = start(start_inferd, repo)
    name = input_name(server)
    n = 2000
    session = requests.Session()
    twos = 0
    for _ in range(n):
        body = v2_body()
        body["inputs"][0]["name"] = name
        twos += session.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=5).json()["model_version"] == "2"
    # Binomial(2000, 0.1): sd ≈ 13.4; 5 sd either side.
    assert abs(twos - 200) < 5 * (n * 0.1 * 0.9) ** 0.5, twos
    for user in range(30):
        headers = {"x-user": f"user-{user}"}
        first = infer_version(server, headers=headers, name=name)
        for _ in range(5):
            assert infer_version(server, headers=headers, name=name) == first
    # Weights at run time through the management API move all traffic.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.put(f"{server.management_url}/v2/repository/models/iris/traffic",
                     json={"weights": {"2": 1}}, headers=auth, timeout=5)
    assert r.status_code == 200, r.text
    for _ in range(50):
        assert infer_version(server, name=name) == "2"


def test_management_needs_a_token_and_the_inference_port_refuses_it(start_inferd, repo):
    server = start(start_inferd, repo)
    url = f"{server.management_url}/v2/repository/index"
    assert requests.post(url, timeout=5).status_code == 401
    assert requests.post(url, headers={"Authorization": "Bearer wrong-token-wrong-token"}, timeout=5).status_code == 403
    assert requests.post(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).status_code == 200
    for path in ("/v2/repository/index", "/v2/repository/models/iris/unload", "/v2/repository/models/iris/load"):
        r = requests.post(server.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert r.status_code in (404, 405), (path, r.status_code)
    # unload / load round trip
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.post(f"{server.management_url}/v2/repository/models/iris/unload", headers=auth, timeout=5).status_code == 200
    assert requests.get(f"{server.url}/v2/models/iris/ready", timeout=5).status_code != 200
    assert requests.post(f"{server.management_url}/v2/repository/models/iris/load", headers=auth, timeout=5).status_code == 200
    assert requests.get(f"{server.url}/v2/models/iris/ready", timeout=5).status_code == 200


def test_management_is_off_by_default(start_inferd, repo):
    from conftest import free_port
    port = free_port()
    server = start_inferd("--model-repository", str(repo), "--management-port", str(port))
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{port}/v2/repository/index", timeout=2)
    assert requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 200


# RSS may grow while allocator arenas warm up; after that, 50 load/unload cycles of a model
# this size (the built-in forest, ~100 KB in memory) must not leave more than 16 MiB behind.
RSS_GROWTH_BOUND_KB = 16 * 1024


def test_fifty_reload_cycles_do_not_grow_memory(start_inferd, repo):
    server = start(start_inferd, repo)
    name = input_name(server)
    for warm in (2, 3):  # warm-up cycles before the baseline
        put_version(repo, warm)
        assert wait_for(lambda: infer_version(server, name=name) == str(warm))
    before = rss_mb(server.proc.pid) * 1024
    for version in range(4, 54):
        put_version(repo, version)
        assert wait_for(lambda: infer_version(server, name=name) == str(version))
        shutil.rmtree(repo / "iris" / str(version - 1), ignore_errors=True)
    after = rss_mb(server.proc.pid) * 1024
    assert after - before < RSS_GROWTH_BOUND_KB, (before, after)
