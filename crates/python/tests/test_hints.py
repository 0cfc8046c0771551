"""Errors and help speak Python: constructors check their arguments at once (ValueError),
messages name the keyword argument instead of the command line's flag or the file, unknown
keys are refused with the valid ones, help() shows the real defaults."""

import inspect
import sys

import numpy as np
import pytest

import lalarand


@pytest.fixture
def dnn():
    return lalarand.Profile.chain("det", [("conv", 1.0, 3.0), ("head", 0.5, 1.5)])


def test_constructors_check_their_arguments(dnn):
    with pytest.raises(ValueError, match=r'Resource\("x", "tpu"\): unknown variant `tpu`, expected `cpu` or `gpu`') as e:
        lalarand.Resource("x", "tpu")
    assert "TOML" not in str(e.value) and "help(lalarand.Resource)" in str(e.value)
    with pytest.raises(ValueError, match=r"Resource\(\"c\", \"cpu\"\): wakeup_overhead_us: .*-1") as e:
        lalarand.Resource("c", "cpu", wakeup_overhead_us=-1.0)
    with pytest.raises(ValueError, match=r'Task\("t", period_ms=-1\): period_ms: -1 is not a positive time') as e:
        lalarand.Task("t", dnn, period_ms=-1)
    assert "TOML" not in str(e.value)
    with pytest.raises(ValueError, match=r"deadline_ms"):
        lalarand.Task("t", dnn, period_ms=10.0, deadline_ms=0.0)
    # Values that fit are accepted as before.
    lalarand.Task("t", dnn, 10.0, deadline_ms=5.0, priority=0)
    lalarand.Resource("c", "cpu", cores=[0], threads=1)


def test_a_system_built_in_code_gets_fixes_for_code(dnn):
    platform = lalarand.Platform([lalarand.Resource("cpu", "cpu")])
    with pytest.raises(lalarand.FormatError, match=r"System\(\.\.\.\)") as e:
        lalarand.System(platform, [lalarand.Task("a", dnn, 10.0), lalarand.Task("a", dnn, 20.0)])
    assert "TOML" not in str(e.value) and "<" not in str(e.value)


def _system(dnn):
    platform = lalarand.Platform([lalarand.Resource("gpu", "gpu"), lalarand.Resource("cpu", "cpu")])
    system = lalarand.System(platform, [lalarand.Task("digits", dnn, 20.0)])
    return system, system.allocate("lalarand").allocation


def test_a_models_key_that_names_no_task_is_refused_with_the_valid_names(dnn):
    system, allocation = _system(dnn)
    with pytest.raises(ValueError, match=r'serve\(models=...\): "digitz" names no task and no profile\'s model; '
                                         r'fix: key models by a task name \(digits\) or a model name \(det\)'):
        lalarand.serve(system, allocation, models={"digitz": "mnist.onnx"}, realtime=False)


def test_a_missing_model_names_the_keyword_argument_not_the_flag(dnn, tmp_path):
    system, allocation = _system(dnn)
    with pytest.raises(lalarand.ServerError) as e:
        lalarand.serve(system, allocation, realtime=False)
    assert 'models={"digits": "path/to/model.onnx"}' in str(e.value) and "--models" not in str(e.value)
    with pytest.raises(lalarand.ServerError) as e:
        lalarand.serve(system, allocation, models={"digits": tmp_path / "nope.onnx"}, realtime=False)
    assert "nope.onnx: no such file" in str(e.value)
    assert 'models={"digits": "path/to/model.onnx"}' in str(e.value) and "--models" not in str(e.value)


def test_bad_keyword_values_are_value_errors(dnn):
    system, allocation = _system(dnn)
    with pytest.raises(ValueError, match=r'realtime=maybe: use True, False or "required"'):
        lalarand.serve(system, allocation, busy=True, realtime="maybe")
    with pytest.raises(ValueError, match=r'stale "old": use "reuse" or "skip"'):
        lalarand.serve(system, allocation, busy=True, stale="old")


# The limited API (the abi3 wheel) gives a class no text signature before Python 3.10.
_CLASS_SIGNATURES = pytest.mark.skipif(sys.version_info < (3, 10), reason="abi3: no class text signatures before 3.10")


@pytest.mark.parametrize("target", [
    pytest.param(lalarand.Resource, marks=_CLASS_SIGNATURES),
    pytest.param(lalarand.Task, marks=_CLASS_SIGNATURES),
    lalarand.serve,
    lalarand.System.simulate,
    lalarand.profile,
])
def test_help_shows_the_real_defaults(target):
    signature = str(inspect.signature(target))
    assert "Ellipsis" not in signature and "..." not in signature, signature


def test_help_shows_the_serve_defaults():
    signature = inspect.signature(lalarand.serve)
    defaults = {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
    assert defaults == {
        "models": None, "periodic": None, "busy": False, "stale": "reuse", "early": "wait", "late": "continue",
        "force": False, "realtime": True, "max_backlog": 4, "results_capacity": 64, "trace_window_ms": None,
        "drain_timeout_ms": 10000.0, "warm_up": True, "calibration": None, "budget": None,
    }
    if sys.version_info >= (3, 10):
        assert inspect.signature(lalarand.Resource).parameters["cores"].default == ()
