"""Open Inference Protocol gRPC conformance with the clients users already have: tritonclient's
gRPC client and the kserve SDK's gRPC V2 client, against a live inferd serving a repository of
several models and versions. Typed `contents` and `raw_input_contents`, several datatypes,
versions, requested outputs, errors, gRPC health and reflection."""

import asyncio
import shutil
import subprocess

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2 as triton_pb
from tritonclient.utils import InferenceServerException

from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as kserve_pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as kserve_grpc

from conftest import ROOT, Inferd, inferd_bin

IRIS_V1 = ROOT / "crates" / "inferd" / "assets" / "iris.onnx"
IRIS_V2 = ROOT / "fixtures" / "iris_logistic_multinomial" / "model.onnx"
XGB_IRIS = ROOT / "fixtures" / "native" / "xgb_multiclass_iris" / "model.json"

# One clear example of each iris class: setosa, versicolor, virginica.
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]], dtype=np.float32)
LABELS = [0, 1, 2]
# Integer-valued rows, for integer datatypes: compared with the same rows sent as FP32.
INT_ROWS = np.array([[5, 4, 1, 0], [7, 3, 5, 1], [6, 3, 6, 2]])


def grpc_supported() -> bool:
    help_text = subprocess.run([inferd_bin(), "serve", "--help"], capture_output=True, text=True).stdout
    return "--grpc-port" in help_text


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpc-repo")
    for model, version, source in [("iris", 1, IRIS_V1), ("iris", 2, IRIS_V2), ("xgb_iris", 1, XGB_IRIS)]:
        d = root / model / str(version)
        d.mkdir(parents=True)
        shutil.copy(source, d / f"model{source.suffix}")
    (root / "iris" / "config.toml").write_text('version_policy = "all"\n')
    return root


@pytest.fixture(scope="module")
def server(repo):
    if not grpc_supported():
        pytest.skip("this inferd binary has no --grpc-port (the gRPC front end is not wired in yet)")
    s = Inferd(["--model-repository", str(repo)])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    c = triton.InferenceServerClient(server.grpc_url)
    yield c
    c.close()


def metadata(client, model="iris", version=""):
    return client.get_model_metadata(model, version, as_json=True)


def names(client, model="iris"):
    """(input name, label output name, probabilities output name), read from model metadata."""
    md = metadata(client, model)
    label = next(o["name"] for o in md["outputs"] if o["datatype"] == "INT64")
    probabilities = next(o["name"] for o in md["outputs"] if o["datatype"] == "FP32")
    return md["inputs"][0]["name"], label, probabilities


def triton_infer(client, rows, datatype="FP32", model="iris", version="", outputs=None, request_id=""):
    name = names(client, model)[0]
    inp = triton.InferInput(name, list(rows.shape), datatype)
    inp.set_data_from_numpy(rows)
    requested = [triton.InferRequestedOutput(o) for o in outputs] if outputs else None
    return client.infer(model, [inp], model_version=version, outputs=requested, request_id=request_id)


def status_of(call):
    with pytest.raises(InferenceServerException) as e:
        call()
    return e.value.status()


# --- tritonclient -------------------------------------------------------------------------------


def test_health(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    assert client.is_model_ready("xgb_iris")
    assert not client.is_model_ready("iris", "9")
    assert not client.is_model_ready("no-such-model")


def test_server_metadata(client):
    md = client.get_server_metadata(as_json=True)
    assert md["name"] == "inferd"
    assert md["version"]


def test_model_metadata(client):
    md = metadata(client)
    assert md["name"] == "iris"
    assert md["versions"] == ["1", "2"]
    assert md["platform"]
    (inp,) = md["inputs"]
    assert inp["datatype"] == "FP32"
    # protobuf's JSON form writes int64 as strings.
    assert [int(d) for d in inp["shape"]][-1] == 4
    assert {o["datatype"] for o in md["outputs"]} >= {"INT64", "FP32"}
    assert metadata(client, version="1")["name"] == "iris"
    assert metadata(client, "xgb_iris")["inputs"][0]["datatype"] == "FP32"


def test_infer_raw_every_version(client):
    _, label, probabilities = names(client)
    for version, expected_version in [("", "2"), ("1", "1"), ("2", "2")]:
        result = triton_infer(client, ROWS, version=version, request_id="req-7")
        response = result.get_response()
        assert response.model_name == "iris"
        assert response.model_version == expected_version
        assert response.id == "req-7"
        assert len(response.raw_output_contents) == len(response.outputs)
        assert result.as_numpy(label).tolist() == LABELS, version
        p = result.as_numpy(probabilities)
        assert p.shape == (3, 3)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)
        assert p.argmax(axis=1).tolist() == LABELS


def test_infer_other_models(client):
    _, label, _ = names(client, "xgb_iris")
    result = triton_infer(client, ROWS, model="xgb_iris")
    assert result.as_numpy(label).tolist() == LABELS


@pytest.mark.parametrize("datatype,dtype", [("FP64", np.float64), ("FP16", np.float16)])
def test_infer_float_datatypes(client, datatype, dtype):
    _, label, _ = names(client)
    result = triton_infer(client, ROWS.astype(dtype), datatype=datatype)
    assert result.as_numpy(label).tolist() == LABELS


@pytest.mark.parametrize(
    "datatype,dtype",
    [("INT64", np.int64), ("INT32", np.int32), ("INT16", np.int16), ("INT8", np.int8), ("UINT8", np.uint8),
     ("UINT16", np.uint16), ("UINT32", np.uint32), ("UINT64", np.uint64)],
)
def test_infer_integer_datatypes(client, datatype, dtype):
    _, label, probabilities = names(client)
    reference = triton_infer(client, INT_ROWS.astype(np.float32))
    result = triton_infer(client, INT_ROWS.astype(dtype), datatype=datatype)
    assert result.as_numpy(label).tolist() == reference.as_numpy(label).tolist()
    np.testing.assert_allclose(result.as_numpy(probabilities), reference.as_numpy(probabilities), rtol=1e-6)


def test_infer_typed_contents_with_tritons_proto(client):
    """tritonclient always sends raw; its generated proto sends typed `contents` too."""
    name, label, probabilities = names(client)
    request = triton_pb.ModelInferRequest(model_name="iris", model_version="1", id="typed-1")
    tensor = request.inputs.add(name=name, datatype="FP32", shape=[3, 4])
    tensor.contents.fp32_contents.extend(ROWS.flatten().tolist())
    response = client._client_stub.ModelInfer(request)
    assert response.id == "typed-1"
    assert response.model_version == "1"
    assert not response.raw_output_contents
    outputs = {o.name: o for o in response.outputs}
    assert list(outputs[label].contents.int64_contents) == LABELS
    assert list(outputs[label].shape) == [3]
    assert len(outputs[probabilities].contents.fp32_contents) == 9


def test_requested_outputs(client):
    _, label, probabilities = names(client)
    result = triton_infer(client, ROWS, outputs=[probabilities])
    response = result.get_response()
    assert [o.name for o in response.outputs] == [probabilities]
    assert result.as_numpy(label) is None


def test_errors_have_the_right_codes(client):
    name = names(client)[0]
    assert status_of(lambda: triton_infer(client, ROWS, model="no-such-model")) == "StatusCode.NOT_FOUND"
    assert status_of(lambda: triton_infer(client, ROWS, version="9")) == "StatusCode.NOT_FOUND"
    assert status_of(lambda: metadata(client, "no-such-model")) == "StatusCode.NOT_FOUND"
    # Three features per row.
    assert status_of(lambda: triton_infer(client, ROWS[:, :3])) == "StatusCode.INVALID_ARGUMENT"
    # Strings where numbers are expected.
    strings = triton.InferInput(name, [1, 4], "BYTES")
    strings.set_data_from_numpy(np.array([[b"a", b"b", b"c", b"d"]], dtype=np.object_))
    assert status_of(lambda: client.infer("iris", [strings])) == "StatusCode.INVALID_ARGUMENT"
    # An output the model does not have.
    assert status_of(lambda: triton_infer(client, ROWS, outputs=["nope"])) == "StatusCode.INVALID_ARGUMENT"
    # A raw entry whose size does not match the shape.
    request = triton_pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name=name, datatype="FP32", shape=[3, 4])
    request.raw_input_contents.append(b"\0" * 40)
    with pytest.raises(grpc.RpcError) as e:
        client._client_stub.ModelInfer(request)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "48 bytes" in e.value.details()


def test_repository_index(client):
    index = client.get_model_repository_index(as_json=True)
    entries = {(m["name"], m.get("version")) for m in index["models"]}
    assert {("iris", "1"), ("iris", "2"), ("xgb_iris", "1")} <= entries


def test_grpc_health_and_reflection(server):
    with grpc.insecure_channel(server.grpc_url) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        # HealthCheckResponse{status: SERVING (1)}.
        assert check(b"", timeout=5) == b"\x08\x01"
        service = b"inference.GRPCInferenceService"
        assert check(b"\x0a" + bytes([len(service)]) + service, timeout=5) == b"\x08\x01"
        reflect = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        # ServerReflectionRequest{list_services: ""} (field 7).
        answers = list(reflect(iter([b"\x3a\x00"]), timeout=5))
        assert service in answers[0]
        assert b"grpc.health.v1.Health" in answers[0]


# --- the kserve SDK's gRPC V2 client ----------------------------------------------------------------


def run(coroutine):
    return asyncio.run(coroutine)


def test_kserve_health_and_metadata(server):
    async def go():
        client = InferenceGRPCClient(url=server.grpc_url, timeout=10)
        assert await client.is_server_live()
        assert await client.is_server_ready()
        assert await client.is_model_ready("iris")
        assert not await client.is_model_ready("no-such-model")
        # The SDK has no metadata helpers; its generated stub is what it puts on the wire.
        async with grpc.aio.insecure_channel(server.grpc_url) as channel:
            stub = kserve_grpc.GRPCInferenceServiceStub(channel)
            md = await stub.ModelMetadata(kserve_pb.ModelMetadataRequest(name="iris", version="1"))
            server_md = await stub.ServerMetadata(kserve_pb.ServerMetadataRequest())
        await client.close()
        return md, server_md

    md, server_md = run(go())
    assert md.name == "iris"
    assert list(md.versions) == ["1", "2"]
    assert md.inputs[0].datatype == "FP32"
    assert server_md.name == "inferd"


def kserve_infer(server, inp, version=None, request_id="k-1"):
    async def go():
        client = InferenceGRPCClient(url=server.grpc_url, timeout=10)
        request = InferRequest(model_name="iris", infer_inputs=[inp], request_id=request_id, model_version=version)
        try:
            return await client.infer(request)
        finally:
            await client.close()

    return run(go())


def kserve_outputs(response):
    return {o.name: o.as_numpy() for o in response.outputs}


def test_kserve_infer_typed(server, client):
    name, label, probabilities = names(client)
    inp = InferInput(name=name, shape=[3, 4], datatype="FP32", data=ROWS.flatten().tolist())
    response = kserve_infer(server, inp, version="1")
    assert response.id == "k-1"
    assert response.model_version == "1"
    outputs = kserve_outputs(response)
    assert outputs[label].flatten().tolist() == LABELS
    assert outputs[probabilities].shape == (3, 3)


def test_kserve_infer_raw(server, client):
    name, label, _ = names(client)
    for datatype, rows in [("FP32", ROWS), ("FP64", ROWS.astype(np.float64))]:
        inp = InferInput(name=name, shape=[3, 4], datatype=datatype)
        inp.set_data_from_numpy(rows, binary_data=True)
        response = kserve_infer(server, inp, version="2")
        assert response.model_version == "2"
        assert kserve_outputs(response)[label].flatten().tolist() == LABELS, datatype


def test_kserve_errors(server, client):
    name = names(client)[0]
    inp = InferInput(name=name, shape=[3, 3], datatype="FP32", data=ROWS[:, :3].flatten().tolist())
    with pytest.raises(grpc.RpcError) as e:
        kserve_infer(server, inp)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
