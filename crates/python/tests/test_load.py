"""Tasks join and leave a running server from Python (`Server.load`, `Server.unload`): a real
ONNX model loads, serves its first result and unloads; every refusal names the argument (or the
task that would miss, and by how much) and changes nothing."""

import json
import pathlib

import numpy as np
import pytest

import lalarand

ROOT = pathlib.Path(__file__).resolve().parents[3]
MNIST = ROOT / "crates" / "engine" / "testdata" / "mnist_resnet.onnx"
PROFILE = ROOT / "examples" / "mnist" / "mnist_resnet.json"
PLATFORM = ROOT / "examples" / "mnist" / "platform.toml"


def write_profile(path, edit=None):
    """The MNIST profile of examples/mnist with its fp32 modes only (served without an int8
    calibration), edited by `edit`."""
    profile = json.loads(PROFILE.read_text())
    for layer in profile["layers"]:
        layer["modes"].pop("cpu-int8", None)
    if edit:
        edit(profile)
    path.write_text(json.dumps(profile))
    return path


@pytest.fixture(scope="module")
def fp32_profile(tmp_path_factory):
    return write_profile(tmp_path_factory.mktemp("profiles") / "mnist_fp32.json")


@pytest.fixture
def server(fp32_profile):
    """`digits` (MNIST, every stage fp32 on cpu0, 100 ms), sporadic: its task set can change."""
    system = lalarand.System(lalarand.Platform.load(PLATFORM),
                             [lalarand.Task("digits", lalarand.Profile.load(fp32_profile), 100.0)])
    allocation = system.allocation({"digits": ["cpu-fp32@cpu0"] * 14})
    with lalarand.serve(system, allocation, {"digits": MNIST}, realtime=False) as s:
        yield s


def image(seed=0):
    return np.random.default_rng(seed).random((1, 1, 28, 28), dtype=np.float32)


def test_an_onnx_model_loads_serves_its_first_result_and_unloads(server, fp32_profile):
    before = server.infer("digits", image()).output
    report = server.load("second", profile=str(fp32_profile), model=MNIST, period_ms=150.0)
    assert (report["kind"], report["task"]) == ("load", "second")
    assert report["pipelines"] == {"kept": ["digits"], "rebuilt": [], "added": ["second"]}, report
    assert report["moved_layers"] == 0 and report["bounds_ns"]["second"] > 0, report
    assert 0 < report["decision_ns"] <= report["to_first_release_ns"], report
    assert report["drain_ns"] >= 0 and report["switched_ns"] <= report["resumed_ns"], report
    assert server.tasks == ["digits", "second"]
    # The same model on the same input: the loaded task answers as the running one.
    np.testing.assert_allclose(server.infer("second", image()).output, before, rtol=1e-5)
    digits = next(t for t in server.stats()["tasks"] if t["name"] == "digits")
    assert digits["completed"] == 1, "statistics continue across the change"

    report = server.unload("second")
    assert (report["kind"], report["pipelines"]["kept"]) == ("unload", ["digits"]), report
    assert server.tasks == ["digits"]
    with pytest.raises(lalarand.InputError, match="second"):
        server.infer("second", image())
    server.infer("digits", image())


def test_a_profile_object_finds_its_model_beside_it(server, tmp_path):
    profile = lalarand.Profile.load(write_profile(tmp_path / "mnist_resnet.json"))
    (tmp_path / "mnist_resnet.onnx").write_bytes(MNIST.read_bytes())
    server.load("beside", profile=profile, period_ms=150.0, priority="deadline-monotonic")
    assert server.infer("beside", image()).output.shape == (1, 10)


def test_refusals_name_the_argument_or_the_task_that_would_miss_and_change_nothing(server, fp32_profile, tmp_path):
    other = write_profile(tmp_path / "other.json", lambda p: p.update(model_sha256="0" * 64))

    def int8_only(p):
        for layer in p["layers"]:
            layer["modes"] = {"cpu-int8": {"wcet_us": 100.0}}
            layer["int8_accuracy_cost"] = 0.2

    int8 = write_profile(tmp_path / "int8.json", int8_only)
    load = server.load
    # 14 stages of 38 ms in all cannot answer within 20 ms wherever they run.
    with pytest.raises(lalarand.AdmissionError, match=r"would miss its 20\.000 ms deadline by \d+\.\d+ ms"):
        load("late", profile=fp32_profile, model=MNIST, period_ms=20.0)
    with pytest.raises(lalarand.AdmissionError, match="already running"):
        load("digits", profile=fp32_profile, model=MNIST, period_ms=150.0)
    with pytest.raises(lalarand.AdmissionError, match="accuracy"):
        load("third", profile=int8, model=MNIST, period_ms=150.0)
    with pytest.raises(ValueError, match=r"Server\.load\(profile=\.\.\.\) does not match Server\.load\(model=\.\.\.\)"):
        load("third", profile=other, model=MNIST, period_ms=150.0)
    with pytest.raises(ValueError, match=r"Server\.load\(model=\.\.\.\): .*nope\.onnx: no such file"):
        load("third", profile=fp32_profile, model=tmp_path / "nope.onnx", period_ms=150.0)
    with pytest.raises(ValueError, match=r"Server\.load\(period_ms=-1"):
        load("third", profile=fp32_profile, model=MNIST, period_ms=-1.0)
    with pytest.raises(ValueError, match=r"Server\.load\(deadline_ms=\.\.\.\)"):
        load("third", profile=fp32_profile, model=MNIST, period_ms=150.0, deadline_ms=200.0)
    with pytest.raises(ValueError, match=r"Server\.load\(priority='first'\)"):
        load("third", profile=fp32_profile, model=MNIST, period_ms=150.0, priority="first")
    with pytest.raises(lalarand.AdmissionError, match=r"Server\.unload: no running task named \"nobody\""):
        server.unload("nobody")
    assert server.tasks == ["digits"]
    server.infer("digits", image())


def test_busy_servers_load_profiles_and_fixed_servers_refuse(fp32_profile):
    dnn = lalarand.Profile.chain("det", [("conv", 1.0, 2.0), ("head", 0.5, 1.0)])
    system = lalarand.System(lalarand.Platform.load(PLATFORM), [lalarand.Task("a", dnn, 20.0)])
    allocation = system.allocation({"a": ["cpu-fp32@cpu0", "cpu-fp32@cpu1"]})
    with lalarand.serve(system, allocation, busy=True, realtime=False) as s:
        report = s.load("b", profile=dnn, period_ms=30.0)
        assert "pipelines" not in report and s.tasks == ["a", "b"]
        assert s.infer("b", np.ones(3, dtype=np.float32)).output.tolist() == [1.0, 1.0, 1.0]
        with pytest.raises(ValueError, match=r"Server\.load\(model=\.\.\.\): this server busy-waits"):
            s.load("c", profile=dnn, model=MNIST, period_ms=30.0)
    with lalarand.serve(system, allocation, busy=True, realtime=False, periodic={"a": lalarand.SLOT}) as s:
        with pytest.raises(lalarand.ServerError, match="cannot change"):
            s.load("b", profile=dnn, period_ms=30.0)


def test_a_server_that_checks_int8_measures_every_load(server, tmp_path):
    """serve(calibration=...) on a server whose tasks can change measures each load's admitted
    mode end to end too (as `lalarand serve --calibration --allow-load`): a profile that offers
    cpu-int8 needs the task's inputs, int8 measured over the budget is refused, an fp32 load
    passes; a server started without calibration refuses the argument rather than ignore it."""
    inputs = tmp_path / "in.f32"
    np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32).astype("<f4").tofile(inputs)
    measured = lalarand.profile(MNIST, tmp_path / "measured.json", modes=["cpu-fp32", "cpu-int8"],
                                calibration=inputs, runs=1, warmup=0)
    assert measured is not None
    data = json.loads((tmp_path / "measured.json").read_text())
    # Measured as distortion, which int8 never makes exactly 0 (a classifier's top-1 on 16
    # random images may well agree).
    data["int8_cost_kind"] = "distortion"

    def variant(name, keep_int8):
        layers = []
        for layer in data["layers"]:
            layer = json.loads(json.dumps(layer))
            if keep_int8 and "cpu-int8" in layer["modes"]:
                # Only int8 where offered, at an estimated cost of 0: admission takes it within
                # any budget, so the measured cost is what decides.
                layer["modes"].pop("cpu-fp32")
                layer["int8_accuracy_cost"] = 0.0
            elif not keep_int8:
                layer["modes"].pop("cpu-int8", None)
            layers.append(layer)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**data, "layers": layers}))
        return path

    int8, fp32 = variant("int8", True), variant("fp32", False)
    system = lalarand.System(lalarand.Platform.load(PLATFORM),
                             [lalarand.Task("digits", lalarand.Profile.load(fp32), 1000.0)])
    allocation = system.allocation({"digits": ["cpu-fp32@cpu0"] * 14})
    with lalarand.serve(system, allocation, {"digits": MNIST}, calibration={"digits": inputs}, budget=0.0,
                        realtime=False) as checked:
        with pytest.raises(ValueError, match=r"Server\.load\(calibration=\.\.\.\): missing, and this server checks"):
            checked.load("quantized", profile=int8, model=MNIST, period_ms=1000.0)
        with pytest.raises(lalarand.AdmissionError, match=r"measured end to end .* over the budget of 0 pp"):
            checked.load("quantized", profile=int8, model=MNIST, period_ms=1000.0, calibration=inputs)
        assert checked.tasks == ["digits"]
        checked.load("plain", profile=fp32, model=MNIST, period_ms=1000.0)
        assert checked.tasks == ["digits", "plain"]
        assert checked.infer("plain", image()).output.shape == (1, 10)
        checked.unload("plain")
    with pytest.raises(ValueError, match=r"Server\.load\(calibration=\.\.\.\): this server does not check"):
        server.load("third", profile=fp32, model=MNIST, period_ms=150.0, calibration=inputs)
