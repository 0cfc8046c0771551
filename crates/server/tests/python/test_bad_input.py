"""Bad requests get a protocol error (HTTP 4xx, gRPC INVALID_ARGUMENT / NOT_FOUND) with a
message naming what is wrong, never a crash: after each the server still answers."""

import http.client
import json

import grpc
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from conftest import client, module_of, parameters, wait_period


def post(server, path, body, headers=None):
    """A raw HTTP POST: (status, body text)."""
    host, port = server.http.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", path, body=body, headers=headers or {})
    response = conn.getresponse()
    status, text = response.status, response.read().decode(errors="replace")
    conn.close()
    return status, text


def still_serves(server):
    wait_period("classifier")
    c = httpclient.InferenceServerClient(server.http)
    x = httpclient.InferInput("input", [1, 1, 28, 28], "FP32")
    x.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32))
    assert parameters(c.infer("classifier", [x]))["response_ns"] > 0
    c.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_unknown_model(engine_server, protocol):
    c = client(engine_server, protocol)
    x = module_of(c).InferInput("input", [1, 1, 28, 28], "FP32")
    x.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(InferenceServerException, match="no_such_task") as e:
        c.infer("no_such_task", [x])
    assert e.value.status() in ("400", "404", "StatusCode.NOT_FOUND", "StatusCode.INVALID_ARGUMENT")
    c.close()
    still_serves(engine_server)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("shape", [[1, 1, 28, 27], [1, 3, 28, 28], [784]])
def test_wrong_shape(engine_server, protocol, shape):
    c = client(engine_server, protocol)
    x = module_of(c).InferInput("input", shape, "FP32")
    x.set_data_from_numpy(np.zeros(shape, np.float32))
    with pytest.raises(InferenceServerException, match="shape") as e:
        c.infer("classifier", [x])
    assert "classifier" in e.value.message()
    c.close()
    still_serves(engine_server)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("dtype, name", [(np.float64, "FP64"), (np.int32, "INT32"), (np.uint8, "UINT8")])
def test_wrong_datatype(engine_server, protocol, dtype, name):
    c = client(engine_server, protocol)
    x = module_of(c).InferInput("input", [1, 1, 28, 28], name)
    x.set_data_from_numpy(np.zeros((1, 1, 28, 28), dtype))
    with pytest.raises(InferenceServerException, match="FP32"):
        c.infer("classifier", [x])
    c.close()
    still_serves(engine_server)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_wrong_input_name(engine_server, protocol):
    c = client(engine_server, protocol)
    x = module_of(c).InferInput("image", [1, 1, 28, 28], "FP32")
    x.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(InferenceServerException, match="input"):
        c.infer("classifier", [x])
    c.close()
    still_serves(engine_server)


def test_http_truncated_binary_body(engine_server):
    """The JSON header announces a 3136-byte binary tensor; the body stops short."""
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 3136}}]}).encode()
    body = header + bytes(1000)
    status, text = post(engine_server, "/v2/models/classifier/infer", body,
                        {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})
    assert status == 400, text
    assert "error" in json.loads(text)
    still_serves(engine_server)


def test_http_header_length_past_the_body(engine_server):
    status, text = post(engine_server, "/v2/models/classifier/infer", b'{"inputs": []}',
                        {"Inference-Header-Content-Length": "4096"})
    assert status == 400, text
    still_serves(engine_server)


@pytest.mark.parametrize("body", [b"{", b"not json", b'{"inputs": 3}', b'{"inputs": [{"name": "input"}]}',
                                  b'{"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", '
                                  b'"data": [1, 2, 3]}]}'])
def test_http_malformed_json(engine_server, body):
    status, text = post(engine_server, "/v2/models/classifier/infer", body, {"Content-Type": "application/json"})
    assert status == 400, text
    assert json.loads(text)["error"]
    still_serves(engine_server)


def test_grpc_raw_contents_shorter_than_the_shape(engine_server):
    """gRPC's raw_input_contents with 1000 bytes for a 3136-byte tensor."""
    channel = grpc.insecure_channel(engine_server.grpc)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    request = service_pb2.ModelInferRequest(model_name="classifier")
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "input", "FP32"
    tensor.shape.extend([1, 1, 28, 28])
    request.raw_input_contents.append(bytes(1000))
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(request, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    # Two raw contents for one input.
    request.raw_input_contents.append(bytes(3136))
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(request, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    channel.close()
    still_serves(engine_server)


def test_huge_declared_shape_is_refused_before_allocating(engine_server):
    """A shape of 2^40 elements with no data: refused from the declared shape, not by running
    out of memory."""
    header = json.dumps({"inputs": [{"name": "input", "shape": [1 << 20, 1 << 20], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    status, text = post(engine_server, "/v2/models/classifier/infer", header + bytes(16),
                        {"Inference-Header-Content-Length": str(len(header))})
    assert status == 400, text
    still_serves(engine_server)


def test_client_gone_mid_job_leaves_the_server_serving(engine_server):
    """A gRPC call whose deadline passes (the client gives up) while the job runs."""
    channel = grpc.insecure_channel(engine_server.grpc)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    request = service_pb2.ModelInferRequest(model_name="camera")
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "input", "FP32"
    tensor.shape.extend([1, 3, 224, 224])
    request.raw_input_contents.append(np.zeros((1, 3, 224, 224), np.float32).tobytes())
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(request, timeout=0.0005)
        # The client gives up: DEADLINE_EXCEEDED, or CANCELLED when its own timer fires first.
        assert e.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
    channel.close()
    still_serves(engine_server)
