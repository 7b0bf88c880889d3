"""REST conformance with the clients users already have, against a live inferd serving a
repository of two iris versions (labelled stable and canary): tritonclient's HTTP client and the
kserve SDK's REST V2 client (JSON and the binary tensor data extension, several datatypes,
versions, requested outputs, errors), KServe V1 and TF Serving forms with plain requests, and
schemathesis against /openapi.json (no server errors).

Set INFERD_HTTP_URL to run the suite against a server that is already running instead."""

import asyncio
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from conftest import ROOT, Inferd

IRIS_V1 = ROOT / "crates" / "inferd" / "assets" / "iris.onnx"
IRIS_V2 = ROOT / "fixtures" / "iris_logistic_multinomial" / "model.onnx"

# One clear example of each iris class: setosa, versicolor, virginica.
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]], dtype=np.float32)
LABELS = [0, 1, 2]
INT_ROWS = np.array([[5, 4, 1, 0], [7, 3, 5, 1], [6, 3, 6, 2]])


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    if os.environ.get("INFERD_HTTP_URL"):
        yield os.environ["INFERD_HTTP_URL"].rstrip("/")
        return
    root = tmp_path_factory.mktemp("http-repo")
    for version, source in [(1, IRIS_V1), (2, IRIS_V2)]:
        d = root / "iris" / str(version)
        d.mkdir(parents=True)
        shutil.copy(source, d / "model.onnx")
    (root / "iris" / "config.toml").write_text('version_policy = "all"\n\n[labels]\nstable = 1\ncanary = 2\n')
    server = Inferd(["--model-repository", str(root)])
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def client(url):
    c = triton.InferenceServerClient(url.removeprefix("http://"))
    yield c
    c.close()


def names(client):
    md = client.get_model_metadata("iris")
    label = next(o["name"] for o in md["outputs"] if o["datatype"] == "INT64")
    probabilities = next(o["name"] for o in md["outputs"] if o["datatype"] == "FP32")
    return md["inputs"][0]["name"], label, probabilities


def status_of(call):
    with pytest.raises(InferenceServerException) as e:
        call()
    return e.value.status()


# --- tritonclient (HTTP) ------------------------------------------------------------------------


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    assert not client.is_model_ready("iris", "9")
    assert not client.is_model_ready("no-such-model")
    md = client.get_server_metadata()
    assert md["name"] == "inferd"
    assert "binary_tensor_data" in md["extensions"]
    md = client.get_model_metadata("iris")
    assert md["name"] == "iris"
    assert md["versions"] == ["1", "2"]
    (inp,) = md["inputs"]
    assert inp["datatype"] == "FP32" and inp["shape"][-1] == 4
    assert client.get_model_metadata("iris", "1")["name"] == "iris"


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
@pytest.mark.parametrize("version", ["", "1", "2"])
def test_infer_json_and_binary(client, binary_in, binary_out, version):
    name, label, probabilities = names(client)
    inp = triton.InferInput(name, list(ROWS.shape), "FP32")
    inp.set_data_from_numpy(ROWS, binary_data=binary_in)
    outputs = [triton.InferRequestedOutput(label, binary_data=binary_out),
               triton.InferRequestedOutput(probabilities, binary_data=binary_out)]
    r = client.infer("iris", [inp], model_version=version, outputs=outputs, request_id="req-7")
    assert list(r.as_numpy(label)) == LABELS
    p = r.as_numpy(probabilities)
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    response = r.get_response()
    assert response["id"] == "req-7"
    assert response["model_version"] == (version or response["model_version"])


def test_requested_outputs_filter(client):
    name, label, probabilities = names(client)
    inp = triton.InferInput(name, list(ROWS.shape), "FP32")
    inp.set_data_from_numpy(ROWS)
    r = client.infer("iris", [inp], outputs=[triton.InferRequestedOutput(label)])
    assert [o["name"] for o in r.get_response()["outputs"]] == [label]
    assert r.as_numpy(probabilities) is None


@pytest.mark.parametrize("datatype,rows", [
    ("FP64", ROWS.astype(np.float64)),
    ("FP16", ROWS.astype(np.float16)),
    ("INT64", INT_ROWS.astype(np.int64)),
    ("INT32", INT_ROWS.astype(np.int32)),
    ("UINT8", INT_ROWS.astype(np.uint8)),
])
def test_other_datatypes_widen_to_the_model_input(client, datatype, rows):
    name, label, _ = names(client)
    expected = client.infer("iris", [_input(name, rows.astype(np.float32), "FP32")],
                            outputs=[triton.InferRequestedOutput(label)]).as_numpy(label)
    for binary in ([True] if datatype == "FP16" else [False, True]):
        got = client.infer("iris", [_input(name, rows, datatype, binary)],
                           outputs=[triton.InferRequestedOutput(label)]).as_numpy(label)
        assert list(got) == list(expected), (datatype, binary)


def _input(name, rows, datatype, binary=True):
    inp = triton.InferInput(name, list(rows.shape), datatype)
    inp.set_data_from_numpy(rows, binary_data=binary)
    return inp


def test_errors_reach_the_client(client):
    name, _, _ = names(client)
    assert status_of(lambda: client.get_model_metadata("no-such-model")) == "404"
    assert status_of(lambda: client.infer("iris", [_input(name, ROWS, "FP32")], model_version="9")) == "404"
    bad = triton.InferInput(name, [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    assert status_of(lambda: client.infer("iris", [bad])) == "400"
    wrong = triton.InferInput("no_such_input", list(ROWS.shape), "FP32")
    wrong.set_data_from_numpy(ROWS)
    assert status_of(lambda: client.infer("iris", [wrong])) == "400"


# --- kserve SDK, REST V2 ------------------------------------------------------------------------


def test_kserve_rest_v2(url, client):
    name, label, _ = names(client)

    async def run():
        c = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        try:
            assert await c.is_server_live(url)
            assert await c.is_server_ready(url)
            assert await c.is_model_ready(url, "iris")
            results = []
            for binary in (False, True):
                inp = InferInput(name, list(ROWS.shape), "FP32")
                inp.set_data_from_numpy(ROWS, binary_data=binary)
                request = InferRequest(model_name="iris", infer_inputs=[inp], request_id="k-1")
                response = await c.infer(url, request, model_name="iris")
                out = next(o for o in response.outputs if o.name == label)
                results.append(list(out.as_numpy()))
            return results
        finally:
            await c.close()

    for labels in asyncio.run(run()):
        assert labels == LABELS


# --- KServe V1 and TF Serving -------------------------------------------------------------------


def test_v1_and_tf_serving(url):
    assert "iris" in requests.get(f"{url}/v1/models").json()["models"]
    status = requests.get(f"{url}/v1/models/iris").json()
    assert status["name"] == "iris" and status["ready"] is True
    assert {s["version"] for s in status["model_version_status"]} == {"1", "2"}
    assert requests.get(f"{url}/v1/models/iris/labels/canary").json()["model_version_status"][0]["version"] == "2"
    meta = requests.get(f"{url}/v1/models/iris/versions/1/metadata").json()
    assert meta["model_spec"] == {"name": "iris", "signature_name": "", "version": "1"}
    rows = ROWS.tolist()
    for path, version in [("iris", None), ("iris/versions/1", "1"), ("iris/labels/stable", "1"), ("iris/labels/canary", "2")]:
        r = requests.post(f"{url}/v1/models/{path}:predict", json={"instances": rows})
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": LABELS}
        if version:
            assert r.headers["x-inferd-model-version"] == version
    outputs = requests.post(f"{url}/v1/models/iris:predict", json={"inputs": rows}).json()["outputs"]
    assert LABELS in outputs.values()
    r = requests.post(f"{url}/v1/models/iris/labels/nightly:predict", json={"instances": rows})
    assert r.status_code == 404 and "nightly" in r.json()["error"]


def test_seed_predict(url):
    r = requests.post(f"{url}/predict", json={"inputs": [5.1, 3.5, 1.4, 0.2]})
    assert r.status_code == 200 and r.text == '{"prediction":[0]}'
    r = requests.post(f"{url}/predict", json={"inputs": ROWS.tolist(), "probabilities": True})
    assert r.json()["prediction"] == LABELS and len(r.json()["probabilities"]) == 3


# --- OpenAPI ------------------------------------------------------------------------------------


def test_docs_work_offline(url):
    page = requests.get(f"{url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and "https://" not in page.text


def test_schemathesis_finds_no_server_errors(url):
    st = shutil.which("schemathesis", path=os.path.dirname(sys.executable))
    assert st, "schemathesis is not installed (requirements-ci.txt)"
    result = subprocess.run(
        [st, "run", f"{url}/openapi.json", "--url", url, "--checks", "not_a_server_error",
         "--max-examples", "25", "--phases", "examples,coverage,fuzzing", "--seed", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
