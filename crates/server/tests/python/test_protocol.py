"""The Open Inference Protocol's core with tritonclient: health, metadata and infer with binary
tensor data over HTTP, gRPC and gRPC over a Unix socket; the MNIST model's outputs against a
direct ONNX Runtime run."""

import gzip

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import MNIST, ROOT, client, concrete, inputs_for, metadata, module_of, parameters

PROTOCOLS = ["http", "grpc", "grpc-unix"]


@pytest.fixture(scope="module")
def mnist_rows():
    """20 labeled MNIST images (pixels / 255) and ONNX Runtime's logits of each."""
    with gzip.open(ROOT / "crates" / "engine" / "testdata" / "mnist_5k.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32, max_rows=20)
    images = (table[:, :-1] / 255.0).reshape(-1, 1, 1, 28, 28).astype(np.float32)
    session = ort.InferenceSession(str(MNIST), providers=["CPUExecutionProvider"])
    return [(image, session.run(None, {"input": image})[0]) for image in images]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_is_live_ready_and_describes_itself(engine_server, protocol):
    c = client(engine_server, protocol)
    assert c.is_server_live()
    assert c.is_server_ready()
    meta = c.get_server_metadata()
    if isinstance(meta, dict):
        name, version, extensions = meta["name"], meta["version"], meta["extensions"]
    else:
        name, version, extensions = meta.name, meta.version, list(meta.extensions)
    assert name == "lalarand" and version
    assert "system_shared_memory" in extensions
    c.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_models_are_the_tasks_with_their_tensors(engine_server, protocol):
    c = client(engine_server, protocol)
    assert c.is_model_ready("classifier") and c.is_model_ready("camera")
    classifier = metadata(c, "classifier")
    assert classifier["name"] == "classifier"
    (inp,), (out,) = classifier["inputs"], classifier["outputs"]
    assert (inp["name"], inp["datatype"]) == ("input", "FP32")
    assert concrete(inp["shape"]) == [1, 1, 28, 28]
    assert (out["name"], out["datatype"]) == ("logits", "FP32")
    assert concrete(out["shape"]) == [1, 10]
    camera = metadata(c, "camera")
    assert [(t["name"], t["datatype"], concrete(t["shape"])) for t in camera["inputs"]] == \
        [("input", "FP32", [1, 3, 224, 224])]
    assert [(t["name"], t["datatype"], concrete(t["shape"])) for t in camera["outputs"]] == \
        [("output", "FP32", [1, 1000])]
    c.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unknown_model_is_not_ready(engine_server, protocol):
    c = client(engine_server, protocol)
    try:
        assert not c.is_model_ready("no_such_task")
    except InferenceServerException as e:  # gRPC may answer NOT_FOUND instead of ready=false
        assert "no_such_task" in e.message()
    with pytest.raises(InferenceServerException, match="no_such_task"):
        c.get_model_metadata("no_such_task")
    c.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mnist_logits_are_onnx_runtimes(engine_server, mnist_rows, protocol):
    """Binary tensor data both ways (HTTP's binary extension, gRPC's raw contents); the
    allocation runs MNIST in fp32, layer by layer, so the logits are ONNX Runtime's."""
    c = client(engine_server, protocol)
    module = module_of(c)
    for image, expected in mnist_rows:
        x = module.InferInput("input", [1, 1, 28, 28], "FP32")
        x.set_data_from_numpy(image)
        result = c.infer("classifier", [x], outputs=[module.InferRequestedOutput("logits")])
        logits = result.as_numpy("logits")
        assert logits.dtype == np.float32 and logits.shape == (1, 10)
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
        assert parameters(result)["deadline_met"] in (True, False)
    c.close()


def test_http_json_tensor_data_gives_the_same_logits(engine_server, mnist_rows):
    """The protocol's JSON `data` (no binary extension) in and out."""
    c = httpclient.InferenceServerClient(engine_server.http)
    image, expected = mnist_rows[0]
    x = httpclient.InferInput("input", [1, 1, 28, 28], "FP32")
    x.set_data_from_numpy(image, binary_data=False)
    result = c.infer("classifier", [x], outputs=[httpclient.InferRequestedOutput("logits", binary_data=False)])
    np.testing.assert_allclose(result.as_numpy("logits").reshape(1, 10), expected, rtol=1e-4, atol=1e-5)
    c.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_camera_squeezenet_answers_a_224x224_frame(engine_server, protocol):
    """The 1x3x224x224 input through the e2e allocation (int8 stages: not compared with fp32)."""
    c = client(engine_server, protocol)
    result = c.infer("camera", inputs_for(c, "camera", seed=3))
    out = result.as_numpy("output")
    assert out.shape == (1, 1000) and out.dtype == np.float32 and np.isfinite(out).all()
    c.close()


def test_all_outputs_come_back_when_none_is_named(engine_server):
    c = grpcclient.InferenceServerClient(engine_server.grpc)
    result = c.infer("classifier", inputs_for(c, "classifier"))
    assert result.as_numpy("logits").shape == (1, 10)
    c.close()
