"""allocate(accuracy=...): the end-to-end check's cost is the user's metric on labeled inputs,
the accuracy drop of the allocation's chain from fp32's, and the budget holds on it (the MNIST
classifier of crates/engine/testdata with its labeled CSV)."""

import json

import numpy as np
import pytest

import lalarand
from test_models import MNIST, mnist_test_rows

PLATFORM = MNIST.parents[3] / "examples" / "mnist" / "platform.toml"
LABELED = 64  # labeled inputs the check scores


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The classifier profiled in cpu-fp32 and cpu-int8, its first labeled test rows as a raw
    fp32 inputs file, and the shortest period (5 % steps of the all-fp32 chain's WCET) that the
    allocator proves only with int8."""
    tmp = tmp_path_factory.mktemp("digits")
    images, labels = mnist_test_rows()
    images, labels = images[:LABELED], labels[:LABELED]
    inputs = tmp / "labeled.f32"
    images.astype("<f4").tofile(inputs)
    measured = lalarand.profile(MNIST, tmp / "mnist_resnet.json", modes=["cpu-fp32", "cpu-int8"],
                                calibration=images[:16], runs=3, min_cold_runs=1, warmup=1)
    # The check is what is tested, not this machine's int8 speed-up (MNIST's small layers may
    # measure no faster in int8, and a loaded machine makes any timing noise): every int8 stage
    # is given a third of its fp32 times, so that a period exists that only int8 makes
    # schedulable. The model, its stages and the saved calibration stay as profiled.
    doc = json.loads(measured.to_json())
    for layer in doc["layers"]:
        fp32, int8 = layer["modes"].get("cpu-fp32"), layer["modes"].get("cpu-int8")
        if fp32 and int8:
            for key, value in fp32.items():
                if key in int8 and key.endswith("_us"):
                    int8[key] = value / 3.0
    profile = lalarand.Profile.from_json(json.dumps(doc))
    layers = doc["layers"]
    fp32_ms = sum(layer["modes"]["cpu-fp32"]["wcet_us"] for layer in layers) / 1000.0
    period = None
    for percent in range(95, 0, -5):
        if not system_at(profile, fp32_ms * percent / 100).allocate("lalarand", budget=1e9).schedulable:
            break
        period = fp32_ms * percent / 100
    assert period is not None, "int8 makes a shorter period schedulable"
    return profile, images, labels, inputs, period


def system_at(profile, period_ms):
    return lalarand.System(lalarand.Platform.load(PLATFORM), [lalarand.Task("digits", profile, period_ms)])


def outputs_of(profile, images, result):
    modes = [entry.split("@")[0] for entry in result.allocation.layers["digits"]]
    return lalarand.run_stages(MNIST, profile, [x[None] for x in images], modes)


def top1(outputs, labels):
    return 100.0 * float(np.mean([int(np.argmax(o)) == y for o, y in zip(outputs, labels)]))


def test_the_check_measures_the_top1_drop_on_labeled_inputs(digits):
    profile, images, labels, inputs, period = digits
    system = system_at(profile, period)
    scored = []

    def accuracy(task, outputs):
        scored.append((task, len(outputs), outputs[0].shape))
        return top1(outputs, labels)

    result = system.allocate("lalarand", budget=1.0, calibration={"digits": inputs}, models={"digits": MNIST},
                             accuracy=accuracy)
    check = result.end_to_end
    assert check["within_budget"] and check["measured_pp"] <= 1.0 + 1e-9, check
    task = check["tasks"][0]
    assert task["measure"] == "accuracy drop" and task["int8_layers"] == result.analysis.int8_layers, check
    assert task["int8_layers"] > 0 and task["inputs"] == LABELED, check
    assert scored[0] == ("digits", LABELED, (1, 10)), scored
    n = len(result.allocation.layers["digits"])
    fp32 = top1(lalarand.run_stages(MNIST, profile, [x[None] for x in images], ["cpu-fp32"] * n), labels)
    drop = fp32 - top1(outputs_of(profile, images, result), labels)
    assert task["measured_pp"] == pytest.approx(drop, abs=1e-9), (task, drop)
    assert check["measured_pp"] == pytest.approx(max(0.0, drop), abs=1e-9), "a rise counts as 0"


def test_a_metric_the_label_free_check_misses_is_held_by_repairing(digits):
    """A made-up metric, the share of inputs whose logits stay within 1e-4 of fp32's, that int8
    loses on nearly every input: the allocation checked label-free keeps int8 and drops it by far
    more than the budget; checked on the metric, it is repaired until its drop is within it."""
    profile, images, _, inputs, period = digits
    system = system_at(profile, period)
    n = len(json.loads(profile.to_json())["layers"])
    exact = lalarand.run_stages(MNIST, profile, [x[None] for x in images], ["cpu-fp32"] * n)

    def unchanged(task, outputs):
        return 100.0 * float(np.mean([np.abs(o - e).max() <= 1e-4 for o, e in zip(outputs, exact)]))

    budget = 1.0
    label_free = system.allocate("lalarand", budget=budget, calibration={"digits": inputs}, models={"digits": MNIST})
    assert label_free.analysis.int8_layers > 0, label_free.end_to_end
    assert 100.0 - unchanged("digits", outputs_of(profile, images, label_free)) > budget, "without the repair"

    result = system.allocate("lalarand", budget=budget, calibration={"digits": inputs}, models={"digits": MNIST},
                             accuracy=unchanged)
    check = result.end_to_end
    assert check["repairs"] and check["within_budget"], check
    assert check["repairs"][0]["measured_pp"] > budget, check
    assert 100.0 - unchanged("digits", outputs_of(profile, images, result)) <= budget + 1e-9, check
    assert result.analysis.int8_layers < label_free.analysis.int8_layers


def test_what_the_metric_raises_propagates_naming_the_argument(digits):
    profile, _, _, inputs, period = digits
    system = system_at(profile, period)
    kwargs = {"budget": 1.0, "calibration": {"digits": inputs}, "models": {"digits": MNIST}}
    with pytest.raises(ZeroDivisionError) as raised:
        system.allocate("lalarand", accuracy=lambda task, outputs: 1 / 0, **kwargs)
    notes = raised.value.__notes__  # Python >= 3.11
    assert any("allocate(accuracy=...)" in n and "'digits'" in n.replace('"', "'") for n in notes), notes
    with pytest.raises(TypeError, match=r"allocate\(accuracy=\.\.\.\): returned 'high'.*fix:"):
        system.allocate("lalarand", accuracy=lambda task, outputs: "high", **kwargs)
    with pytest.raises(ValueError, match=r"allocate\(accuracy=\.\.\.\): returned NaN.*fix:"):
        system.allocate("lalarand", accuracy=lambda task, outputs: float("nan"), **kwargs)
    with pytest.raises(TypeError, match=r"allocate\(accuracy=\.\.\.\): not callable"):
        system.allocate("lalarand", accuracy=3.0, **kwargs)
    with pytest.raises(ValueError, match=r"allocate\(accuracy=\.\.\.\): needs the labeled inputs.*calibration="):
        system.allocate("lalarand", budget=1.0, accuracy=lambda task, outputs: 100.0)
