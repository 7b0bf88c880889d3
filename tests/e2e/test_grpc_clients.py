"""Open Inference Protocol gRPC conformance with the clients users already have: tritonclient's
gRPC client and the kserve SDK's gRPC V2 client, against a live inferd serving a repository of
several models and versions. Typed `contents` and `raw_input_contents`, several datatypes,
versions, requested outputs, errors, gRPC health and reflection.

tritonclient's and the kserve SDK's generated protos both define `inference.*` in protobuf's one
default descriptor pool, so no process can import both: the kserve checks run in pytest's process
(as test_http_clients.py's do), and each tritonclient check runs in a child process of its own,
`python test_grpc_clients.py CHECK HOST:PORT`, which imports only tritonclient."""

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

IRIS_V1 = ROOT / "crates" / "inferd" / "assets" / "iris.onnx"
IRIS_V2 = ROOT / "fixtures" / "iris_logistic_multinomial" / "model.onnx"
XGB_IRIS = ROOT / "fixtures" / "native" / "xgb_multiclass_iris" / "model.json"

# One clear example of each iris class: setosa, versicolor, virginica.
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]], dtype=np.float32)
LABELS = [0, 1, 2]
# Integer-valued rows, for integer datatypes: compared with the same rows sent as FP32.
INT_ROWS = np.array([[5, 4, 1, 0], [7, 3, 5, 1], [6, 3, 6, 2]])


# --- the live server --------------------------------------------------------------------------------


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
    from conftest import Inferd

    s = Inferd(["--model-repository", str(repo)])
    yield s
    s.stop()


# --- tritonclient (each check in a child process) ------------------------------------------------

TRITON_CHECKS = {}


def triton_check(fn):
    TRITON_CHECKS[fn.__name__] = fn
    return fn


def run_triton_check(check, url):
    r = subprocess.run(
        [sys.executable, __file__, check, url], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent
    )
    assert r.returncode == 0, f"tritonclient check {check} failed:\n{r.stdout}\n{r.stderr}"


def triton_names(client, model="iris"):
    """(input name, label output name, probabilities output name), read from model metadata."""
    md = client.get_model_metadata(model, as_json=True)
    label = next(o["name"] for o in md["outputs"] if o["datatype"] == "INT64")
    probabilities = next(o["name"] for o in md["outputs"] if o["datatype"] == "FP32")
    return md["inputs"][0]["name"], label, probabilities


def triton_infer(client, rows, datatype="FP32", model="iris", version="", outputs=None, request_id=""):
    import tritonclient.grpc as triton

    name = triton_names(client, model)[0]
    inp = triton.InferInput(name, list(rows.shape), datatype)
    inp.set_data_from_numpy(rows)
    requested = [triton.InferRequestedOutput(o) for o in outputs] if outputs else None
    return client.infer(model, [inp], model_version=version, outputs=requested, request_id=request_id)


def triton_status(call):
    from tritonclient.utils import InferenceServerException

    try:
        call()
    except InferenceServerException as e:
        return e.status()
    raise AssertionError("the call succeeded")


@triton_check
def health(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    assert client.is_model_ready("xgb_iris")
    assert not client.is_model_ready("iris", "9")
    assert not client.is_model_ready("no-such-model")


@triton_check
def server_metadata(client):
    md = client.get_server_metadata(as_json=True)
    assert md["name"] == "inferd", md
    assert md["version"], md


@triton_check
def model_metadata(client):
    md = client.get_model_metadata("iris", as_json=True)
    assert md["name"] == "iris", md
    assert md["versions"] == ["1", "2"], md
    assert md["platform"], md
    (inp,) = md["inputs"]
    assert inp["datatype"] == "FP32", md
    # protobuf's JSON form writes int64 as strings.
    assert [int(d) for d in inp["shape"]][-1] == 4, md
    assert {o["datatype"] for o in md["outputs"]} >= {"INT64", "FP32"}, md
    assert client.get_model_metadata("iris", "1", as_json=True)["name"] == "iris"
    assert client.get_model_metadata("xgb_iris", as_json=True)["inputs"][0]["datatype"] == "FP32"


@triton_check
def infer_raw_every_version(client):
    _, label, probabilities = triton_names(client)
    for version, expected_version in [("", "2"), ("1", "1"), ("2", "2")]:
        result = triton_infer(client, ROWS, version=version, request_id="req-7")
        response = result.get_response()
        assert response.model_name == "iris"
        assert response.model_version == expected_version, (version, response.model_version)
        assert response.id == "req-7"
        assert len(response.raw_output_contents) == len(response.outputs)
        assert result.as_numpy(label).tolist() == LABELS, version
        p = result.as_numpy(probabilities)
        assert p.shape == (3, 3), p.shape
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)
        assert p.argmax(axis=1).tolist() == LABELS


@triton_check
def infer_another_runtime(client):
    _, label, _ = triton_names(client, "xgb_iris")
    result = triton_infer(client, ROWS, model="xgb_iris")
    assert result.as_numpy(label).tolist() == LABELS


@triton_check
def infer_float_datatypes(client):
    _, label, _ = triton_names(client)
    for datatype, dtype in [("FP64", np.float64), ("FP16", np.float16)]:
        result = triton_infer(client, ROWS.astype(dtype), datatype=datatype)
        assert result.as_numpy(label).tolist() == LABELS, datatype


@triton_check
def infer_integer_datatypes(client):
    _, label, probabilities = triton_names(client)
    reference = triton_infer(client, INT_ROWS.astype(np.float32))
    for datatype, dtype in [("INT64", np.int64), ("INT32", np.int32), ("INT16", np.int16), ("INT8", np.int8),
                            ("UINT8", np.uint8), ("UINT16", np.uint16), ("UINT32", np.uint32),
                            ("UINT64", np.uint64)]:
        result = triton_infer(client, INT_ROWS.astype(dtype), datatype=datatype)
        assert result.as_numpy(label).tolist() == reference.as_numpy(label).tolist(), datatype
        np.testing.assert_allclose(result.as_numpy(probabilities), reference.as_numpy(probabilities), rtol=1e-6)


@triton_check
def infer_typed_contents(client):
    """tritonclient's InferInput always sends raw data; its generated proto sends typed contents."""
    from tritonclient.grpc import service_pb2

    name, label, probabilities = triton_names(client)
    request = service_pb2.ModelInferRequest(model_name="iris", model_version="1", id="typed-1")
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


@triton_check
def requested_outputs(client):
    _, label, probabilities = triton_names(client)
    result = triton_infer(client, ROWS, outputs=[probabilities])
    assert [o.name for o in result.get_response().outputs] == [probabilities]
    assert result.as_numpy(label) is None


@triton_check
def errors_have_the_right_codes(client):
    import tritonclient.grpc as triton
    from tritonclient.grpc import service_pb2

    name = triton_names(client)[0]
    assert triton_status(lambda: triton_infer(client, ROWS, model="no-such-model")) == "StatusCode.NOT_FOUND"
    assert triton_status(lambda: triton_infer(client, ROWS, version="9")) == "StatusCode.NOT_FOUND"
    assert triton_status(lambda: client.get_model_metadata("no-such-model")) == "StatusCode.NOT_FOUND"
    # Three features per row.
    bad = triton.InferInput(name, [3, 3], "FP32")
    bad.set_data_from_numpy(ROWS[:, :3].copy())
    assert triton_status(lambda: client.infer("iris", [bad])) == "StatusCode.INVALID_ARGUMENT"
    # Strings where numbers are expected.
    strings = triton.InferInput(name, [1, 4], "BYTES")
    strings.set_data_from_numpy(np.array([[b"a", b"b", b"c", b"d"]], dtype=np.object_))
    assert triton_status(lambda: client.infer("iris", [strings])) == "StatusCode.INVALID_ARGUMENT"
    # An output the model does not have.
    assert triton_status(lambda: triton_infer(client, ROWS, outputs=["nope"])) == "StatusCode.INVALID_ARGUMENT"
    # A raw entry whose size does not match the shape.
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name=name, datatype="FP32", shape=[3, 4])
    request.raw_input_contents.append(b"\0" * 40)
    try:
        client._client_stub.ModelInfer(request)
        raise AssertionError("a short raw entry was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert "48 bytes" in e.details(), e.details()


@triton_check
def oversized_message(client):
    # 9.6 MB of raw input, over the server's default 8 MiB message limit.
    rows = np.zeros((600_000, 4), dtype=np.float32)
    assert triton_status(lambda: triton_infer(client, rows)) == "StatusCode.RESOURCE_EXHAUSTED"
    # Refused before it was read; the server is fine.
    assert triton_infer(client, ROWS).as_numpy(triton_names(client)[1]).tolist() == LABELS


@triton_check
def repository_index(client):
    index = client.get_model_repository_index(as_json=True)
    entries = {(m["name"], m.get("version")) for m in index["models"]}
    assert {("iris", "1"), ("iris", "2"), ("xgb_iris", "1")} <= entries, entries


@pytest.mark.parametrize("check", sorted(TRITON_CHECKS))
def test_tritonclient_grpc(server, check):
    run_triton_check(check, server.grpc_url)


# --- plain gRPC: health and reflection ---------------------------------------------------------


def test_grpc_health_and_reflection(server):
    with grpc.insecure_channel(server.grpc_url) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        # HealthCheckResponse{status: SERVING (1)}.
        assert check(b"", timeout=5) == b"\x08\x01"
        service = b"inference.GRPCInferenceService"
        assert check(b"\x0a" + bytes([len(service)]) + service, timeout=5) == b"\x08\x01"
        with pytest.raises(grpc.RpcError) as e:
            check(b"\x0a\x04nope", timeout=5)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        reflect = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        # ServerReflectionRequest{list_services: ""} (field 7).
        answers = list(reflect(iter([b"\x3a\x00"]), timeout=5))
        assert service in answers[0]
        assert b"grpc.health.v1.Health" in answers[0]


# --- the kserve SDK's gRPC V2 client (in this process) --------------------------------------------


def kserve_modules():
    from kserve import InferenceGRPCClient, InferInput, InferRequest
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    return InferenceGRPCClient, InferInput, InferRequest, pb, pb_grpc


def kserve_metadata(server, model="iris", version=""):
    _, _, _, pb, pb_grpc = kserve_modules()
    with grpc.insecure_channel(server.grpc_url) as channel:
        return pb_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(
            pb.ModelMetadataRequest(name=model, version=version), timeout=10
        )


def kserve_names(server):
    md = kserve_metadata(server)
    label = next(o.name for o in md.outputs if o.datatype == "INT64")
    probabilities = next(o.name for o in md.outputs if o.datatype == "FP32")
    return md.inputs[0].name, label, probabilities


def kserve_infer(server, inp, version=None, request_id="k-1"):
    InferenceGRPCClient, _, InferRequest, _, _ = kserve_modules()

    async def go():
        client = InferenceGRPCClient(url=server.grpc_url, timeout=10)
        request = InferRequest(model_name="iris", infer_inputs=[inp], request_id=request_id, model_version=version)
        try:
            return await client.infer(request)
        finally:
            await client.close()

    return asyncio.run(go())


def kserve_outputs(response):
    return {o.name: o.as_numpy() for o in response.outputs}


def test_kserve_health_and_metadata(server):
    InferenceGRPCClient, _, _, pb, pb_grpc = kserve_modules()

    async def go():
        client = InferenceGRPCClient(url=server.grpc_url, timeout=10)
        try:
            assert await client.is_server_live()
            assert await client.is_server_ready()
            assert await client.is_model_ready("iris")
            assert not await client.is_model_ready("no-such-model")
        finally:
            await client.close()

    asyncio.run(go())
    # The SDK has no metadata helpers; its generated stub is what it would put on the wire.
    md = kserve_metadata(server, version="1")
    assert md.name == "iris"
    assert list(md.versions) == ["1", "2"]
    assert md.inputs[0].datatype == "FP32"
    with grpc.insecure_channel(server.grpc_url) as channel:
        server_md = pb_grpc.GRPCInferenceServiceStub(channel).ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
    assert server_md.name == "inferd"


def test_kserve_infer_typed(server):
    _, InferInput, _, _, _ = kserve_modules()
    name, label, probabilities = kserve_names(server)
    inp = InferInput(name=name, shape=[3, 4], datatype="FP32", data=ROWS.flatten().tolist())
    response = kserve_infer(server, inp, version="1")
    assert response.id == "k-1"
    assert response.model_version == "1"
    outputs = kserve_outputs(response)
    assert outputs[label].flatten().tolist() == LABELS
    assert outputs[probabilities].shape == (3, 3)


def test_kserve_infer_raw(server):
    _, InferInput, _, _, _ = kserve_modules()
    name, label, _ = kserve_names(server)
    for datatype, rows in [("FP32", ROWS), ("FP64", ROWS.astype(np.float64)), ("INT64", INT_ROWS.astype(np.int64))]:
        inp = InferInput(name=name, shape=[3, 4], datatype=datatype)
        inp.set_data_from_numpy(rows, binary_data=True)
        response = kserve_infer(server, inp, version="2")
        assert response.model_version == "2"
        labels = kserve_outputs(response)[label].flatten().tolist()
        if datatype != "INT64":
            assert labels == LABELS, datatype
        else:
            assert len(labels) == 3


def test_kserve_errors(server):
    _, InferInput, _, _, _ = kserve_modules()
    name = kserve_names(server)[0]
    inp = InferInput(name=name, shape=[3, 3], datatype="FP32", data=ROWS[:, :3].flatten().tolist())
    with pytest.raises(grpc.RpcError) as e:
        kserve_infer(server, inp)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details()


# --- child process entry point for the tritonclient checks -----------------------------------------

if __name__ == "__main__":
    import tritonclient.grpc

    check, url = sys.argv[1], sys.argv[2]
    triton_client = tritonclient.grpc.InferenceServerClient(url)
    try:
        TRITON_CHECKS[check](triton_client)
    finally:
        triton_client.close()
