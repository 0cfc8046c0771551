"""The model repository extension with real models: PyPI's unmodified tritonclient loads an ONNX
model into a running `lalarand serve --allow-load` (`load_model(name, config=JSON)`, the load's
parameters as one JSON text, as docs/runtime.md says), infers with it and unloads it; bad loads
are refused with an error naming the parameter, and change nothing."""

import ast
import json
import subprocess
import sys

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from conftest import MNIST, ROOT, client, inputs_for, metadata, start, stop_cleanly

PROFILE = ROOT / "examples" / "mnist" / "mnist_resnet.json"


def write_profile(path, edit=None):
    """The MNIST profile of examples/mnist, fp32 modes only (served without an int8
    calibration), edited by `edit`."""
    profile = json.loads(PROFILE.read_text())
    for layer in profile["layers"]:
        layer["modes"].pop("cpu-int8", None)
    if edit:
        edit(profile)
    path.write_text(json.dumps(profile))
    return str(path)


@pytest.fixture(scope="module")
def loadable(lalarand_bin, tmp_path_factory):
    """`classifier` (MNIST, fp32 on cpu0, 100 ms) served with --allow-load."""
    d = tmp_path_factory.mktemp("loadable")
    write_profile(d / "mnist_fp32.json")
    (d / "taskset.toml").write_text('[[task]]\nname = "classifier"\nprofile = "mnist_fp32.json"\nperiod_ms = 100.0\n')
    layers = ", ".join(['"cpu-fp32@cpu0"'] * 14)
    (d / "allocation.toml").write_text(f'[[task]]\nname = "classifier"\nlayers = [{layers}]\n')
    server = start(lalarand_bin, "--platform", ROOT / "examples" / "mnist" / "platform.toml",
                   "--tasks", d / "taskset.toml", "--allocation", d / "allocation.toml",
                   "--models", f"classifier={MNIST}", "--allow-load")
    server.dir = d
    yield server
    stop_cleanly(server)


def config(profile, period_ms=150, model=MNIST, **more):
    return json.dumps({"model_path": str(model), "profile_path": profile, "period_ms": period_ms, **more})


def output(c, model, seed):
    """The first output of `model` for the seeded input."""
    name = metadata(c, model)["outputs"][0]["name"]
    return c.infer(model, inputs_for(c, model, seed=seed)).as_numpy(name)


def refusal(call):
    with pytest.raises(InferenceServerException) as e:
        call()
    return str(e.value)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_an_onnx_model_loads_serves_its_first_result_and_unloads(loadable, protocol):
    c = client(loadable, protocol)
    name = f"second_{protocol}"
    c.load_model(name, config=config(str(loadable.dir / "mnist_fp32.json")))
    assert c.is_model_ready(name)
    # The same model on the same input: the loaded task answers as the running one.
    np.testing.assert_allclose(output(c, name, seed=3), output(c, "classifier", seed=3), rtol=1e-5)
    c.unload_model(name)
    assert not c.is_model_ready(name)
    assert c.is_model_ready("classifier")
    c.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_loads_name_the_parameter_and_change_nothing(loadable, protocol):
    c = client(loadable, protocol)
    d = loadable.dir
    good = str(d / "mnist_fp32.json")
    other = write_profile(d / "other.json", lambda p: p.update(model_sha256="0" * 64))

    def int8_only(p):
        for layer in p["layers"]:
            layer["modes"] = {"cpu-int8": {"wcet_us": 100.0}}
            layer["int8_accuracy_cost"] = 0.2

    int8 = write_profile(d / "int8.json", int8_only)
    cases = [
        ("classifier", config(good), "already running"),
        ("third", config(good, model=d / "nope.onnx"), "parameters.model_path"),
        ("third", config(other), "parameters.profile does not match parameters.model_path"),
        ("third", config(int8), "accuracy"),
        ("third", json.dumps({"model_path": str(MNIST), "profile_path": good}), "parameters.period_ms"),
    ]
    for name, text, says in cases:
        message = refusal(lambda: c.load_model(name, config=text))
        assert says in message, (says, message)
    assert "nobody" in refusal(lambda: c.unload_model("nobody"))
    if protocol == "grpc":  # tritonclient's HTTP client cannot send files (bytes are not JSON)
        message = refusal(lambda: c.load_model("third", config=config(good), files={"file:1/model.onnx": b"\x08\x07"}))
        assert "parameters.file:1/model.onnx" in message and "model_path" in message, message
    index = c.get_model_repository_index()
    names = [m["name"] for m in index] if isinstance(index, list) else [m.name for m in index.models]
    assert names == ["classifier"], names
    c.close()


def test_the_readmes_registering_program_gets_its_first_result(loadable):
    """docs/snippets/register.py, the README's second process, run as written from the
    repository's root (its URL replaced by the test server's); then its model is unloaded."""
    code = (ROOT / "docs" / "snippets" / "register.py").read_text()
    assert "127.0.0.1:8000" in code and code.strip() in (ROOT / "README.md").read_text(), "the README shows it"
    done = subprocess.run([sys.executable, "-c", code.replace("127.0.0.1:8000", loadable.http)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    digit, params = done.stdout.strip().split(" ", 1)
    assert 0 <= int(digit) <= 9
    params = ast.literal_eval(params)
    assert params["job"] == 0 and params["bound_ns"] > 0, params
    c = client(loadable, "http")
    c.unload_model("digits2")
    c.close()
