"""A model with several inputs of several dtypes and two outputs, served from Python with a dict
of named arrays (as onnxruntime's `run` takes): crates/engine/testdata/masked_gather.onnx, an
image (float32), a mask (bool) that zeroes features (`Where`) and two channel indices (int64)
that pick what the last convolution reads (`Gather`); `pooled` pools the features before the
mask. Profiled here with `lalarand.profile`."""

import pathlib

import numpy as np
import pytest

import lalarand

ROOT = pathlib.Path(__file__).resolve().parents[3]
E2E = ROOT / "examples" / "e2e"
MODEL = ROOT / "crates" / "engine" / "testdata" / "masked_gather.onnx"


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    """The model profiled in fp32, all stages on cpu0, served as task `masked`."""
    out = tmp_path_factory.mktemp("multi_io") / "masked_gather.json"
    profile = lalarand.profile(MODEL, out, modes=["cpu-fp32"], runs=5, warmup=2, warm_cache=True)
    system = lalarand.System(lalarand.Platform.load(E2E / "platform.toml"), [lalarand.Task("masked", profile, 20.0)])
    allocation = system.allocation({"masked": ["cpu-fp32@cpu0"] * len(system.tasks[0].layers)})
    with lalarand.serve(system, allocation, {"masked": MODEL}) as server:
        yield server


def inputs(mask, index=(3, 1), seed=0):
    image = np.random.default_rng(seed).random((1, 3, 8, 8), dtype=np.float32)
    return {"image": image, "mask": np.broadcast_to(np.asarray(mask, bool), (1, 4, 8, 8)).copy(),
            "index": np.array(index, dtype=np.int64)}


def test_named_inputs_of_three_dtypes_give_both_outputs(masked):
    keep = masked.infer("masked", inputs(True), timeout=30)
    assert sorted(keep.outputs) == ["picked", "pooled"]
    assert keep.outputs["picked"].shape == (1, 3, 8, 8) and keep.outputs["pooled"].shape == (1, 4, 1, 1)
    assert np.abs(keep.outputs["picked"]).max() > 0
    # A mask that keeps nothing zeroes what the last convolution reads (it has no bias), and
    # does not touch `pooled`, which pools before the mask: the bool input reaches its stage.
    drop = masked.infer("masked", inputs(False), timeout=30)
    assert np.all(drop.outputs["picked"] == 0)
    np.testing.assert_array_equal(drop.outputs["pooled"], keep.outputs["pooled"])
    # Other indices pick other channels: the int64 input reaches its stage.
    other = masked.infer("masked", inputs(True, index=(0, 2)), timeout=30)
    assert not np.allclose(other.outputs["picked"], keep.outputs["picked"])
    # The same inputs give the same outputs.
    again = masked.infer("masked", inputs(True), timeout=30)
    np.testing.assert_array_equal(again.outputs["picked"], keep.outputs["picked"])


def test_a_wrong_dtype_or_a_missing_input_is_named(masked):
    bad = inputs(True)
    bad["index"] = bad["index"].astype(np.float64)
    with pytest.raises(lalarand.InputError, match=r'input "index": got an array of dtype float64'):
        masked.submit("masked", bad)
    bad["index"] = bad["index"].astype(np.int32)
    with pytest.raises(lalarand.InputError, match=r'input "index" has datatype INT32, expected INT64'):
        masked.submit("masked", bad)
    missing = inputs(True)
    del missing["mask"]
    with pytest.raises(lalarand.InputError, match=r'input "mask" is missing'):
        masked.submit("masked", missing)
