"""Outputs keep the datatype the model declares: an ArgMax's int64 class, a comparison's bool
mask, their int32 and uint8 casts reach Python as numpy arrays of those dtypes, with exactly the
values numpy computes from the float input. The model is built here with `onnx`."""

import pathlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import lalarand

E2E = pathlib.Path(__file__).resolve().parents[3] / "examples" / "e2e"

DTYPES = {"relu": np.float32, "label": np.int64, "label32": np.int32, "above": np.bool_, "above_u8": np.uint8}


def typed_outputs_model(path):
    nodes = [
        helper.make_node("Relu", ["x"], ["relu"], name="relu"),
        helper.make_node("ArgMax", ["x"], ["label"], name="argmax", axis=1, keepdims=0),
        helper.make_node("Greater", ["relu", "half"], ["above"], name="greater"),
        helper.make_node("Cast", ["label"], ["label32"], name="to_int32", to=TensorProto.INT32),
        helper.make_node("Cast", ["above"], ["above_u8"], name="to_uint8", to=TensorProto.UINT8),
    ]
    outputs = [
        helper.make_tensor_value_info("relu", TensorProto.FLOAT, [1, 6]),
        helper.make_tensor_value_info("label", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("label32", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("above", TensorProto.BOOL, [1, 6]),
        helper.make_tensor_value_info("above_u8", TensorProto.UINT8, [1, 6]),
    ]
    graph = helper.make_graph(nodes, "typed_outputs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              outputs, initializer=[helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("typed_outputs")
    model = folder / "typed_outputs.onnx"
    typed_outputs_model(model)
    profile = lalarand.profile(model, folder / "typed_outputs.json", modes=["cpu-fp32"], runs=5, warmup=2,
                               warm_cache=True)
    system = lalarand.System(lalarand.Platform.load(E2E / "platform.toml"), [lalarand.Task("typed", profile, 20.0)])
    allocation = system.allocation({"typed": ["cpu-fp32@cpu0"] * len(system.tasks[0].layers)})
    with lalarand.serve(system, allocation, {"typed": model}) as server:
        yield server


def test_each_output_has_the_dtype_the_model_declares_and_exact_values(served):
    for seed in range(3):
        x = np.random.default_rng(seed).normal(size=(1, 6)).astype(np.float32)
        out = served.infer("typed", x, timeout=30).outputs
        assert sorted(out) == sorted(DTYPES)
        for name, dtype in DTYPES.items():
            assert out[name].dtype == dtype, (name, out[name].dtype)
        np.testing.assert_array_equal(out["relu"], np.maximum(x, 0))
        np.testing.assert_array_equal(out["label"], np.argmax(x, axis=1))
        np.testing.assert_array_equal(out["label32"], np.argmax(x, axis=1).astype(np.int32))
        np.testing.assert_array_equal(out["above"], np.maximum(x, 0) > 0.5)
        np.testing.assert_array_equal(out["above_u8"], (np.maximum(x, 0) > 0.5).astype(np.uint8))
        assert out["above"].shape == (1, 6) and out["label"].shape == (1,)
