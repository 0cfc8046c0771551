"""A model with several inputs of different datatypes and two outputs, from `lalarand profile`
to `lalarand serve --listen`, reached with tritonclient: an image (FP32), a mask (BOOL) and
channel indices (INT64) sent by name, both outputs read back and compared with ONNX Runtime's
run of the whole model. The model is crates/engine/testdata/masked_gather.onnx (written by
`cargo run -p lalarand-engine --example multi_io_models -- crates/engine/testdata`)."""

import subprocess

import numpy as np
import onnxruntime as ort
import pytest

from conftest import E2E, ROOT, client, concrete, metadata, module_of, start, stop_cleanly

MODEL = ROOT / "crates" / "engine" / "testdata" / "masked_gather.onnx"
PERIOD_S = 0.02


@pytest.fixture(scope="module")
def multi_io_server(lalarand_bin, tmp_path_factory):
    """The model profiled here (fp32), allocated on the e2e platform, served as task `masked`."""
    d = tmp_path_factory.mktemp("multi_io")
    profile = d / "masked_gather.json"
    subprocess.run([lalarand_bin, "profile", str(MODEL), "--out", str(profile), "--modes", "cpu-fp32",
                    "--runs", "5", "--warmup", "2", "--warm-cache"], check=True, capture_output=True)
    tasks = d / "taskset.toml"
    tasks.write_text('priority = "rate-monotonic"\n\n[[task]]\nname = "masked"\n'
                     f'profile = "masked_gather.json"\nperiod_ms = {PERIOD_S * 1e3}\n')
    allocation = d / "allocation.toml"
    subprocess.run([lalarand_bin, "allocate", "--platform", str(E2E / "platform.toml"), "--tasks", str(tasks),
                    "--policy", "lalarand-fp32", "--out", str(allocation)], check=True, capture_output=True)
    server = start(lalarand_bin, "--platform", E2E / "platform.toml", "--tasks", tasks, "--allocation", allocation,
                   "--models", f"masked={MODEL}", "--early", "wait")
    yield server
    stop_cleanly(server)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_model_declares_every_input_and_output(multi_io_server, protocol):
    c = client(multi_io_server, protocol)
    meta = metadata(c, "masked")
    assert [(t["name"], t["datatype"], concrete(t["shape"])) for t in meta["inputs"]] == \
        [("image", "FP32", [1, 3, 8, 8]), ("mask", "BOOL", [1, 4, 8, 8]), ("index", "INT64", [2])]
    assert [(t["name"], t["datatype"], concrete(t["shape"])) for t in meta["outputs"]] == \
        [("picked", "FP32", [1, 3, 8, 8]), ("pooled", "FP32", [1, 4, 1, 1])]
    c.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_named_inputs_of_three_datatypes_give_onnx_runtimes_outputs(multi_io_server, protocol):
    c = client(multi_io_server, protocol)
    module = module_of(c)
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for k in range(3):
        feed = {
            "image": rng.random((1, 3, 8, 8), dtype=np.float32),
            "mask": rng.random((1, 4, 8, 8)) > 0.3,
            "index": np.array([3, k], dtype=np.int64),
        }
        inputs = []
        for name, value in feed.items():
            tensor = module.InferInput(name, list(value.shape), {np.float32: "FP32", np.bool_: "BOOL",
                                                                 np.int64: "INT64"}[value.dtype.type])
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        outputs = [module.InferRequestedOutput("picked"), module.InferRequestedOutput("pooled")]
        result = c.infer("masked", inputs, outputs=outputs)
        picked, pooled = session.run(["picked", "pooled"], feed)
        np.testing.assert_allclose(result.as_numpy("picked"), picked, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.as_numpy("pooled"), pooled, rtol=1e-5, atol=1e-6)
    c.close()


def test_a_wrong_datatype_names_the_input(multi_io_server):
    c = client(multi_io_server, "grpc")
    module = module_of(c)
    inputs = []
    for name, value in [("image", np.zeros((1, 3, 8, 8), np.float32)), ("mask", np.ones((1, 4, 8, 8), np.bool_)),
                        ("index", np.zeros(2, np.float32))]:
        t = module.InferInput(name, list(value.shape), {"image": "FP32", "mask": "BOOL", "index": "FP32"}[name])
        t.set_data_from_numpy(value)
        inputs.append(t)
    from tritonclient.utils import InferenceServerException
    with pytest.raises(InferenceServerException, match="index"):
        c.infer("masked", inputs)
    c.close()
