"""Hostile inputs against the release binary (issue 13, items 5 and 8; RELIABILITY.md checks 19
and 20): FP64 values beyond FP32's range sent to an FP32 input, over HTTP JSON, HTTP binary,
gRPC typed contents and gRPC raw contents, must be refused alike and never become infinity; a
zlib bomb framed as a joblib pickle must be refused at start-up with exit 64 and a small peak
RSS. Loopback only, bounded to seconds. Figures are printed (`pytest -s`) for docs/pickle.md."""

import json
import struct
import subprocess
import sys
import zlib

import grpc
import numpy as np
import pytest
import requests

from conftest import free_port, inferd_bin

# The built-in iris model: FP32 input `float_input` [-1, 4].
MODEL = "iris"
FINE = [5.1, 3.5, 1.4, 0.2]


def kserve_pb():
    # kserve's generated protos, as test_grpc_clients.py uses in pytest's process (tritonclient's
    # would clash with them in protobuf's one descriptor pool).
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    return pb, pb_grpc


def input_name(server) -> str:
    return requests.get(f"{server.url}/v2/models/{MODEL}", timeout=5).json()["inputs"][0]["name"]


def http_json(server, name, values):
    body = {"inputs": [{"name": name, "shape": [1, 4], "datatype": "FP64", "data": values}]}
    r = requests.post(f"{server.url}/v2/models/{MODEL}/infer", json=body, timeout=10)
    return r.status_code, r.json().get("error")


def http_binary(server, name, values):
    raw = np.array(values, dtype="<f8").tobytes()
    header = json.dumps({"inputs": [{"name": name, "shape": [1, 4], "datatype": "FP64",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    r = requests.post(f"{server.url}/v2/models/{MODEL}/infer", data=header + raw, timeout=10,
                      headers={"Inference-Header-Content-Length": str(len(header)),
                               "Content-Type": "application/octet-stream"})
    body = json.loads(r.content[: int(r.headers.get("Inference-Header-Content-Length", len(r.content)))])
    return r.status_code, body.get("error")


def grpc_call(server, name, values, raw):
    pb, pb_grpc = kserve_pb()
    request = pb.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name=name, datatype="FP64", shape=[1, 4])
    if raw:
        request.raw_input_contents.append(np.array(values, dtype="<f8").tobytes())
    else:
        tensor.contents.fp64_contents.extend(values)
    with grpc.insecure_channel(server.grpc_url) as channel:
        try:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
            return grpc.StatusCode.OK, None
        except grpc.RpcError as e:
            return e.code(), e.details()


def every_front_end(server, values, json_ok=True):
    name = input_name(server)
    answers = {}
    if json_ok:
        answers["http json"] = http_json(server, name, values)
    answers["http binary"] = http_binary(server, name, values)
    answers["grpc typed"] = grpc_call(server, name, values, raw=False)
    answers["grpc raw"] = grpc_call(server, name, values, raw=True)
    return name, answers


# The value, where it goes among the four features, and how the server writes it (Rust's `{:e}`).
@pytest.mark.parametrize("value, position, written", [
    (1e39, 3, "1e39"),
    (-3.5e38, 0, "-3.5e38"),
    (1.7976931348623157e308, 2, "1.7976931348623157e308"),
])
def test_fp64_beyond_fp32_is_refused_alike_everywhere(inferd, value, position, written):
    values = list(FINE)
    values[position] = value
    name, answers = every_front_end(inferd, values)
    expected = f"input '{name}' has {written} at element {position}, out of range for FP32"
    print(f"\nFP64 {value!r} at element {position}: {answers}")
    for front_end, (status, message) in answers.items():
        if front_end.startswith("http"):
            assert status == 400, (front_end, status, message)
        else:
            assert status == grpc.StatusCode.INVALID_ARGUMENT, (front_end, status, message)
        assert message == expected, (front_end, message)


def test_fp32_limits_and_infinities_sent_in_binary_are_served(inferd):
    # FP32's largest value passes everywhere; an infinity the client sent is carried (binary
    # and gRPC only: JSON has none), as docs/http.md says, rather than refused.
    largest = float(np.finfo(np.float32).max)
    for values, json_ok in [([5.1, 3.5, 1.4, largest], True), ([5.1, 3.5, 1.4, float("inf")], False)]:
        _, answers = every_front_end(inferd, values, json_ok)
        for front_end, (status, message) in answers.items():
            assert status in (200, grpc.StatusCode.OK), (values, front_end, status, message)


# --- the zlib bomb ------------------------------------------------------------------------------

BOMB_ZEROS = 2 << 30
# PROTO 4, then BINBYTES8 claiming 2 GiB: what joblib's stream would begin with, were these
# zeros an array's bytes. A plain joblib.dump would need the 2 GiB in memory; this is streamed.
BOMB_HEADER = b"\x80\x04\x8e" + struct.pack("<Q", BOMB_ZEROS)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.joblib"
    z = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(z.compress(BOMB_HEADER))
        for _ in range(BOMB_ZEROS // len(chunk)):
            f.write(z.compress(chunk))
        f.write(z.flush())
    return path


# Runs one command and reports its exit status, output and peak RSS. A process of its own, so
# that RUSAGE_CHILDREN covers inferd alone, not pytest's other children.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.monotonic()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)
print(json.dumps({"rc": r.returncode, "out": r.stdout + r.stderr, "seconds": time.monotonic() - start,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def test_zlib_bomb_is_refused_at_start_with_a_small_peak_rss(bomb):
    cmd = [inferd_bin(), "serve", "--host", "127.0.0.1", "--http-port", str(free_port()),
           "--grpc-port", str(free_port()), "--metrics-port", str(free_port()), "--model", str(bomb)]
    r = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    peak_mb = result["maxrss_kib"] / 1024
    print(f"\nzlib bomb: {bomb.stat().st_size / 1e6:.1f} MB file expanding to {BOMB_ZEROS >> 30} GiB; "
          f"inferd exited {result['rc']} after {result['seconds']:.2f} s at a peak RSS of {peak_mb:.1f} MiB")
    assert result["rc"] == 64, result["out"]
    assert "decompresses to more than allowed" in result["out"], result["out"]
    assert str(bomb.parent) not in result["out"], "the error shows the model's directory"
    assert peak_mb < 64, f"peak RSS {peak_mb:.1f} MiB"


def test_a_small_plain_start_costs_about_the_same(tmp_path):
    """The baseline for the figure above: the same binary refusing a 1-byte model file."""
    model = tmp_path / "tiny.joblib"
    model.write_bytes(b"\x00")
    cmd = [inferd_bin(), "serve", "--host", "127.0.0.1", "--http-port", str(free_port()),
           "--grpc-port", str(free_port()), "--metrics-port", str(free_port()), "--model", str(model)]
    r = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, timeout=60)
    result = json.loads(r.stdout)
    print(f"\nbaseline: a 1-byte model file refused, exit {result['rc']}, "
          f"peak RSS {result['maxrss_kib'] / 1024:.1f} MiB")
    assert result["rc"] == 64, result["out"]
