"""A convolutional network served by the real binary: inferd-onnx has no Conv or MaxPool, so
the loader falls back to tract; V2 REST answers must match onnxruntime on the same file. And a
graph neither runtime can run is refused at start-up with both reasons, naming no directory."""

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import requests
from onnx import TensorProto, helper
from sklearn.datasets import load_digits

from conftest import ROOT, Inferd

CNN = ROOT / "fixtures" / "nn" / "digits_cnn" / "model.onnx"


@pytest.fixture
def cnn_file(tmp_path):
    path = tmp_path / "cnn.onnx"
    shutil.copy(CNN, path)
    return path


def test_cnn_served_through_tract_matches_onnxruntime(start_inferd, cnn_file):
    server = start_inferd("--model", str(cnn_file))
    meta = requests.get(server.url + "/v2/models/cnn", timeout=5).json()
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]

    images = (load_digits().data[[3, 42]] / 16.0).astype(np.float32).reshape(2, 1, 8, 8)
    body = {"inputs": [{"name": "image", "shape": [2, 1, 8, 8], "datatype": "FP32",
                        "data": images.ravel().tolist()}]}
    r = requests.post(server.url + "/v2/models/cnn/infer", json=body, timeout=10)
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}

    sess = ort.InferenceSession(str(cnn_file), providers=["CPUExecutionProvider"])
    label, proba = sess.run(["label", "probabilities"], {"image": images})
    assert outputs["label"]["datatype"] == "INT64"
    assert outputs["label"]["shape"] == [2]
    assert outputs["label"]["data"] == label.tolist()
    assert outputs["probabilities"]["shape"] == [2, 10]
    got = np.array(outputs["probabilities"]["data"], np.float32).reshape(2, 10)
    np.testing.assert_allclose(got, proba, atol=1e-5, rtol=0)

    # A request that does not fit the declared image is the client's fault.
    bad = {"inputs": [{"name": "image", "shape": [1, 1, 8, 7], "datatype": "FP32",
                       "data": [0.0] * 56}]}
    r = requests.post(server.url + "/v2/models/cnn/infer", json=bad, timeout=10)
    assert r.status_code == 400, r.text


def test_graph_neither_runtime_runs_is_refused_with_both_reasons(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["X"], ["Y"], name="mystery")], "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "mystery.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(RuntimeError) as info:
        Inferd(["--model", str(path)], ready_timeout=15)
    message = str(info.value)
    assert "unsupported operator Frobnicate" in message
    assert "tract" in message
    assert str(tmp_path) not in message, "error shows the model's directory"
