"""Serving real models from Python (ONNX Runtime, fetched on first use as for `lalarand run`):
the MNIST classifier's outputs through the server against the command line's own inference."""

import gzip
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import lalarand

ROOT = pathlib.Path(__file__).resolve().parents[3]
E2E = ROOT / "examples" / "e2e"
MNIST = ROOT / "crates" / "engine" / "testdata" / "mnist_resnet.onnx"
DATASET = ROOT / "crates" / "engine" / "testdata" / "mnist_5k.csv.gz"


def mnist_test_rows(train_per_class=400):
    """The rows `lalarand accuracy` measures (all but the first 400 of every class), / 255."""
    with gzip.open(DATASET, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    labels = table[:, -1].astype(np.int64)
    seen = {}
    keep = []
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > train_per_class:
            keep.append(i)
    return (table[keep, :-1] / 255.0).reshape(-1, 1, 28, 28).astype(np.float32), labels[keep]


@pytest.fixture(scope="module")
def digits_system():
    """The MNIST classifier alone at a 10 ms minimum inter-arrival time on the e2e platform."""
    platform = lalarand.Platform.load(E2E / "platform.toml")
    profile = lalarand.Profile.load(E2E / "mnist_resnet.json")
    return lalarand.System(platform, [lalarand.Task("digits", profile, 10.0)])


def split_over_two_cpus(system):
    layers = system.tasks[0].layers
    return system.allocation({"digits": [f"cpu-fp32@cpu{j % 2}" for j in range(len(layers))]})


def test_fp32_split_over_two_resources_classifies_as_the_cli(digits_system, cli):
    """Top-1 over the 1000 test rows submitted through the server (every other stage on the
    other cpu) equals the all-fp32 top-1 `lalarand accuracy` computes with the same model."""
    images, labels = mnist_test_rows()
    allocation = split_over_two_cpus(digits_system)
    assert digits_system.analyze(allocation).schedulable
    predictions = []
    with lalarand.serve(digits_system, allocation, {"digits": MNIST}) as server:
        assert server.input_shape("digits").endswith("1, 28, 28]")
        for image in images:
            result = server.infer("digits", image[None], timeout=30)
            assert result.output.shape == (1, 10) and result.output.dtype == np.float32
            assert result.bound_ns is not None
            predictions.append(int(np.argmax(result.output)))
        stats = server.stats()
    top1 = 100.0 * np.mean(np.array(predictions) == labels)
    _, accuracy = cli("accuracy", MNIST, "--dataset", DATASET, "--int8", "none")
    assert top1 == pytest.approx(accuracy["fp32_top1"], abs=1e-9), (top1, accuracy)
    assert stats["tasks"][0]["completed"] == len(images)


def test_outputs_are_the_models_and_the_same_for_a_copy(digits_system):
    """The same row gives the same logits whether submitted as a contiguous array (shared) or
    as a strided view (copied), and in the all-on-one-cpu allocation as in the split one."""
    images, _ = mnist_test_rows()
    image = images[7][None]
    strided = np.repeat(image, 2, axis=3)[:, :, :, ::2]
    assert not strided.flags["C_CONTIGUOUS"]
    outputs = []
    for allocation in (
        split_over_two_cpus(digits_system),
        digits_system.allocation({"digits": ["cpu-fp32@cpu0"] * len(digits_system.tasks[0].layers)}),
    ):
        with lalarand.serve(digits_system, allocation, {"digits": MNIST}) as server:
            outputs.append(server.infer("digits", image, timeout=30).output)
            outputs.append(server.infer("digits", strided, timeout=30).output)
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], rtol=0, atol=1e-4 * float(np.ptp(outputs[0])))


def test_bad_model_input_names_the_task_and_the_expected_shape(digits_system):
    allocation = split_over_two_cpus(digits_system)
    with lalarand.serve(digits_system, allocation, {"digits": MNIST}) as server:
        with pytest.raises(lalarand.InputError, match=r'task "digits": bad input: input "\w+" has shape \[1, 28, 28\], expected \[.*1, 28, 28\]'):
            server.submit("digits", np.zeros((1, 28, 28), dtype=np.float32))
        with pytest.raises(lalarand.InputError, match=r'dtype float64, expected a float32 numpy array, shape \[.*1, 28, 28\]'):
            server.submit("digits", np.zeros((1, 1, 28, 28)))
        assert server.infer("digits", np.zeros((1, 1, 28, 28), dtype=np.float32), timeout=30).output.shape == (1, 10)


def test_a_changed_model_is_refused(digits_system, tmp_path):
    changed = tmp_path / "mnist_resnet.onnx"
    changed.write_bytes(MNIST.read_bytes() + b"\0")
    with pytest.raises(lalarand.ServerError, match="changed since it was profiled"):
        lalarand.serve(digits_system, split_over_two_cpus(digits_system), {"digits": changed})


def test_profiled_mixed_int8_allocation_classifies_as_lalarand_accuracy(cli, tmp_path):
    """The whole user path from Python: `lalarand profile` (int8 calibrated on the 20 training
    rows per class `lalarand accuracy` uses, saved with the profile), an allocation with every
    other stage int8 over two cpus, the 1000 test rows through the server: the same top-1 as
    `lalarand accuracy` for that allocation."""
    with gzip.open(DATASET, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    seen = {}
    calibration_rows = []
    for i, label in enumerate(table[:, -1].astype(np.int64)):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= 20:
            calibration_rows.append(i)
    (table[calibration_rows, :-1] / 255.0).astype("<f4").tofile(tmp_path / "calibration.bin")
    profile = tmp_path / "mnist_resnet.json"
    cli("profile", MNIST, "--calibration", tmp_path / "calibration.bin", "--runs", "3", "--warmup", "1",
        "--cores", "0", "--threads", "1", "--modes", "cpu-fp32,cpu-int8", "--out", profile)
    (tmp_path / "taskset.toml").write_text('[[task]]\nname = "digits"\nprofile = "mnist_resnet.json"\nperiod_ms = 4.0\n')
    system = lalarand.System.load(tmp_path / "taskset.toml", platform=E2E / "platform.toml")
    n = len(system.tasks[0].layers)
    allocation = system.allocation({"digits": [
        f"{'cpu-int8' if j % 2 == 0 else 'cpu-fp32'}@cpu{int(j >= n // 2)}" for j in range(n)
    ]})
    assert system.analyze(allocation).int8_layers == (n + 1) // 2
    allocation.save(tmp_path / "allocation.toml")
    images, labels = mnist_test_rows()
    correct = 0
    # force: the point here is the outputs; 3 timing runs per stage are no worst case.
    with lalarand.serve(system, allocation, {"digits": MNIST}, force=True) as server:
        for image, label in zip(images, labels):
            correct += int(np.argmax(server.infer("digits", image[None], timeout=30).output) == label)
    _, accuracy = cli("accuracy", MNIST, "--dataset", DATASET, "--platform", E2E / "platform.toml",
                      "--tasks", tmp_path / "taskset.toml", "--allocation", tmp_path / "allocation.toml",
                      "--task", "digits")
    assert accuracy["samples"] == len(labels)
    assert 100.0 * correct / len(labels) == pytest.approx(accuracy["top1"], abs=1e-9), accuracy


def calibrated_mnist_profile(cli, tmp_path):
    """16 MNIST test images as raw fp32 (`in.f32`) and the classifier profiled in cpu-fp32 and
    cpu-int8 with them as calibration (`mnist_resnet.json`): (images, inputs, profile)."""
    images, _ = mnist_test_rows()
    inputs = tmp_path / "in.f32"
    images[:16].astype("<f4").tofile(inputs)
    profile = tmp_path / "mnist_resnet.json"
    cli("profile", MNIST, "--runs", "1", "--warmup", "0", "--modes", "cpu-fp32,cpu-int8",
        "--calibration", inputs, "--out", profile)
    return images, inputs, profile


def test_allocate_checks_int8_end_to_end_on_calibration_inputs(cli, tmp_path):
    """allocate(calibration=...) measures the chosen allocation's int8 against fp32 on the
    given inputs (as `lalarand allocate --calibration`) and reports it next to the budget."""
    images, inputs, profile = calibrated_mnist_profile(cli, tmp_path)
    (tmp_path / "tasks.toml").write_text('[[task]]\nname = "digits"\nprofile = "mnist_resnet.json"\nperiod_ms = 20\n')
    system = lalarand.System.load(tmp_path / "tasks.toml")
    result = system.allocate("lalarand", budget=100.0, calibration={"digits": inputs}, models={"digits": MNIST})
    check = result.end_to_end
    assert check["budget_pp"] == 100.0 and check["within_budget"] is True, check
    task = check["tasks"][0]
    assert task["task"] == "digits" and task["int8_layers"] == result.analysis.int8_layers, check
    assert task["inputs"] == (16 if task["int8_layers"] else 0), check
    assert check["measured_pp"] >= 0.0 and check["repairs"] == [], check
    assert system.allocate("lalarand").end_to_end is None


def test_serve_refuses_an_allocation_over_its_budget_measured_end_to_end(cli, tmp_path):
    """serve(calibration=..., budget=...) measures the allocation's int8 chain before starting:
    every int8-capable stage int8, measured as distortion (never exactly 0 in int8), is refused
    over a budget of 0 and served within a budget of 100."""
    images, inputs, profile = calibrated_mnist_profile(cli, tmp_path)
    data = json.loads(profile.read_text())
    data["int8_cost_kind"] = "distortion"
    profile.write_text(json.dumps(data))
    platform = lalarand.Platform.load(E2E / "platform.toml")
    system = lalarand.System(platform, [lalarand.Task("digits", lalarand.Profile.load(profile), 1000.0)])
    modes = ["cpu-int8@cpu0" if "cpu-int8" in layer["modes"] else "cpu-fp32@cpu0" for layer in data["layers"]]
    allocation = system.allocation({"digits": modes})
    with pytest.raises(lalarand.ServerError, match=r"measured end to end .* over the budget of 0"):
        lalarand.serve(system, allocation, {"digits": MNIST}, calibration={"digits": inputs}, budget=0.0,
                       realtime=False)
    with lalarand.serve(system, allocation, {"digits": MNIST}, calibration={"digits": inputs}, budget=100.0,
                        realtime=False) as server:
        assert server.infer("digits", images[:1], timeout=30).output.shape == (1, 10)
    with pytest.raises(ValueError, match="busy"):
        lalarand.serve(system, allocation, busy=True, calibration={"digits": inputs})
