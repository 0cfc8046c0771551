"""The model tools from Python and the `lalarand` command pip installs: `lalarand.zoo` writes
the same bytes as `lalarand zoo`, `lalarand.profile` profiles a model into a `Profile` that
allocates and serves, and the console script is the command line itself."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import lalarand
from conftest import sigint_as_in_a_terminal

ROOT = pathlib.Path(__file__).resolve().parents[3]
MNIST = ROOT / "crates" / "engine" / "testdata" / "mnist_resnet.onnx"
# The console script pip put beside this interpreter.
COMMAND = pathlib.Path(sys.executable).parent / "lalarand"
# Quick timing settings: these tests check what is written, not the times.
QUICK = dict(runs=3, warmup=1, min_cold_runs=1, warm_cache=True, threads=1)


def test_the_installed_command_is_the_command_line(cli, examples):
    assert COMMAND.is_file(), f"pip installed no lalarand command at {COMMAND}"
    version = subprocess.run([COMMAND, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.strip() == f"lalarand {lalarand.__version__}"
    args = ["analyze", "--tasks", examples / "taskset-light.toml", "--platform", examples / "platform.toml",
            "--allocation", examples / "allocation-light.toml"]
    done = subprocess.run([COMMAND, *map(str, args), "--json"], capture_output=True, text=True, cwd=ROOT)
    code, expected = cli(*args)
    assert done.returncode == code and json.loads(done.stdout) == expected
    # Bad input: the command line's message and exit status 2.
    bad = subprocess.run([COMMAND, "analyze", "--tasks", "missing.toml", "--allocation", "missing-too.toml"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.toml" in bad.stderr


def test_ctrl_c_ends_the_installed_command(tmp_path):
    """SIGINT ends a running command at once, as it ends the native binary (which has no
    handler for it there), instead of waiting for the end to raise KeyboardInterrupt."""
    child = subprocess.Popen([COMMAND, "demo", "--quick", "--out", tmp_path / "demo"], stdout=subprocess.DEVNULL,
                             preexec_fn=sigint_as_in_a_terminal)
    time.sleep(1.0)
    assert child.poll() is None, "the demo ended before it could be interrupted"
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=30) == -signal.SIGINT
    assert time.monotonic() - sent < 1.0


def test_zoo_writes_what_the_command_line_writes(cli, tmp_path):
    assert "squeezenet1_1" in lalarand.zoo_architectures()
    ours = lalarand.zoo("squeezenet1_1", tmp_path / "ours.onnx", seed=3)
    code, report = cli("zoo", "squeezenet1_1", "--out", tmp_path / "theirs.onnx", "--seed", 3)
    assert code == 0 and report["bytes"] == ours.stat().st_size
    assert ours.read_bytes() == (tmp_path / "theirs.onnx").read_bytes()
    with pytest.raises(ValueError, match="zoo: .*squeezenet1_1"):
        lalarand.zoo("lenet", tmp_path / "x.onnx")


def test_profile_returns_a_profile_that_allocates_and_serves(tmp_path):
    model = tmp_path / "mnist_resnet.onnx"
    model.write_bytes(MNIST.read_bytes())
    profile = lalarand.profile(model, modes=["cpu-fp32"], **QUICK)
    assert (tmp_path / "mnist_resnet.json").is_file()  # beside the model by default
    assert profile.model == "mnist_resnet" and len(profile.layers) > 1
    written = json.loads(profile.to_json())
    assert all(set(layer["modes"]) == {"cpu-fp32"} for layer in written["layers"])

    core = sorted(os.sched_getaffinity(0))[-1]
    platform = lalarand.Platform([lalarand.Resource("cpu", "cpu", cores=[core], dispatch_overhead_us=200.0,
                                                    wakeup_overhead_us=200.0)])
    system = lalarand.System(platform, [lalarand.Task("digits", profile, 200.0)])
    allocation = system.allocation({"digits": ["cpu-fp32@cpu"] * len(profile.layers)})
    # The model beside the profile is found without `models=`.
    with lalarand.serve(system, allocation, realtime=False, force=True) as server:
        result = server.infer("digits", np.zeros((1, 1, 28, 28), dtype=np.float32), timeout=30)
    assert result.output.shape == (1, 10)


def test_profile_calibrates_int8_on_unlabeled_arrays(tmp_path):
    samples = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    profile = lalarand.profile(MNIST, tmp_path / "p.json", modes=["cpu-fp32", "cpu-int8"], calibration=samples, **QUICK)
    written = json.loads(profile.to_json())
    assert all({"cpu-fp32", "cpu-int8"} <= set(layer["modes"]) for layer in written["layers"])
    assert written.get("int8_cost_kind") is not None  # measured without labels


def test_profile_names_its_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"profile\(model=...\): .*nope.onnx: no such file"):
        lalarand.profile(tmp_path / "nope.onnx")
    with pytest.raises(ValueError, match=r"profile\(modes=...\)"):
        lalarand.profile(MNIST, tmp_path / "p.json", modes=["tpu"])
    with pytest.raises(ValueError, match=r"profile\(margin=...\): 0.5 is not a WCET margin"):
        lalarand.profile(MNIST, tmp_path / "p.json", margin=0.5)
    with pytest.raises(ValueError, match=r"profile\(calibration=...\)"):
        lalarand.profile(MNIST, tmp_path / "p.json", calibration=[[1.0, 2.0]])


DATASET = ROOT / "crates" / "engine" / "testdata" / "mnist_5k.csv.gz"


def test_verify_returns_the_command_lines_report(cli):
    ours = lalarand.verify(MNIST, modes=["cpu-fp32"], samples=2)
    code, theirs = cli("verify", MNIST, "--modes", "cpu-fp32", "--samples", 2)
    assert code == 0 and ours["passed"] is True
    assert ours["stages"] == theirs["stages"] and [m["mode"] for m in ours["modes"]] == ["cpu-fp32"]
    assert ours["modes"][0]["cosine"] == pytest.approx(theirs["modes"][0]["cosine"], abs=1e-6)
    with pytest.raises(lalarand.LalarandError, match=r"lalarand.verify: MODEL .*nope.onnx: no such file"):
        lalarand.verify(MNIST.parent / "nope.onnx")


def test_accuracy_returns_the_command_lines_report(cli):
    ours = lalarand.accuracy(MNIST, DATASET, int8="none")
    code, theirs = cli("accuracy", MNIST, "--dataset", DATASET, "--int8", "none")
    assert code == 0 and ours == theirs


PROFILE_CHILD = """
import sys, lalarand
print("ready", flush=True)
try:
    lalarand.profile(sys.argv[1], sys.argv[2], modes=["cpu-fp32"], runs=1_000_000, warmup=0, min_cold_runs=1,
                     warm_cache=True)
    print("not interrupted", flush=True)
except KeyboardInterrupt as e:
    print("interrupted", e, flush=True)
"""


def test_ctrl_c_stops_profile_between_stages(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", PROFILE_CHILD, str(MNIST), str(tmp_path / "p.json")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=sigint_as_in_a_terminal)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(3.0)  # loading the model and the runtime, then well into the first stages
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert out.startswith("interrupted profile("), out + err
    assert "p.partial.json" in out and not (tmp_path / "p.json").exists()


def test_run_stages_runs_the_profiled_stages_in_the_modes_given(tmp_path):
    samples = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    profile = lalarand.profile(MNIST, tmp_path / "p.json", modes=["cpu-fp32", "cpu-int8"], calibration=samples, **QUICK)
    layers = len(profile.layers)
    fp32 = lalarand.run_stages(MNIST, profile, samples, ["cpu-fp32"] * layers)
    assert len(fp32) == 4 and all(o.shape == (1, 10) and o.dtype == np.float32 for o in fp32)
    # The same stages, one sample at a time, as a list: the same outputs.
    again = lalarand.run_stages(MNIST, profile, [s[None] for s in samples], ["cpu-fp32@cpu0"] * layers)
    assert all(np.array_equal(a, b) for a, b in zip(fp32, again))
    # Every stage the profile offers in int8 (the build check may refuse some) runs int8.
    offered = ["cpu-int8" if "cpu-int8" in layer["modes"] else "cpu-fp32"
               for layer in json.loads(profile.to_json())["layers"]]
    assert "cpu-int8" in offered
    int8 = lalarand.run_stages(MNIST, profile, samples, offered)
    a, b = np.concatenate(fp32).ravel(), np.concatenate(int8).ravel()
    assert not np.array_equal(a, b), "int8 stages ran"
    assert np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) > 0.99


def test_run_stages_names_its_bad_arguments(tmp_path):
    samples = np.zeros((1, 1, 28, 28), dtype=np.float32)
    profile = lalarand.profile(MNIST, tmp_path / "p.json", modes=["cpu-fp32"], **QUICK)
    layers = len(profile.layers)
    with pytest.raises(ValueError, match=rf"run_stages\(modes=...\): 1 modes for the {layers} layers"):
        lalarand.run_stages(MNIST, profile, samples, ["cpu-fp32"])
    with pytest.raises(ValueError, match=r"run_stages\(modes=...\)"):
        lalarand.run_stages(MNIST, profile, samples, ["tpu"] * layers)
    with pytest.raises(lalarand.LalarandError, match=r"sample 0 has 10 values; the shape \[1, 1, 28, 28\]"):
        lalarand.run_stages(MNIST, profile, [np.zeros((1, 10), dtype=np.float32)], ["cpu-fp32"] * layers)
    with pytest.raises(lalarand.LalarandError, match="no saved int8 calibration"):
        lalarand.run_stages(MNIST, profile, samples, ["cpu-int8"] * layers)
