"""``lalarand.verify`` and ``lalarand.accuracy``: the command line's ``verify`` and ``accuracy``
run in this process (the command line compiled into the extension module), their ``--json``
report returned as a dict. The command line decides everything; this only passes the
arguments and reads the report."""

import json
import os
import sys
import tempfile
from os import PathLike
from typing import Any, Mapping, Optional, Sequence, Union

from . import _lalarand

_Path = Union[str, "PathLike[str]"]


def _shapes(input_shapes):
    return [f"--input-shape={name}={','.join(map(str, dims))}" for name, dims in (input_shapes or {}).items()]


def _run_json(command, args):
    """Runs ``lalarand COMMAND ARGS --json``; (exit status, report). Exit status 2 (bad input
    or a failure) raises ``LalarandError`` with the command line's message."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            _lalarand._forward_logs()  # the command's warnings reach `logging`
            status = _lalarand._cli_main(["lalarand", command, *args, "--json"])
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        err.seek(0)
        report, logs = out.read().decode(), err.read().decode()
    if status not in (0, 1) or not report.strip():
        message = logs.strip().removeprefix("error: ")
        raise _lalarand.LalarandError(f"lalarand.{command}: {message}")
    if logs.strip():
        sys.stderr.write(logs)  # the command line's warnings
    return status, json.loads(report)


def verify(
    model: _Path,
    *,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    dataset: Optional[_Path] = None,
    train_per_class: int = 400,
    samples: int = 8,
    seed: int = 1,
    modes: Optional[Sequence[str]] = None,
) -> dict[str, Any]:
    """Do the stages compute what the model computes? ``lalarand verify``: the chained stages in
    every mode (default: gpu where there is one, cpu-fp32, cpu-int8) next to the whole fp32
    model on the same inputs (``samples`` seeded ones, or rows of the labeled CSV ``dataset``).
    Returns the report (``passed``, and per mode ``cosine``, ``relative_error``, ``threshold``...).

    >>> report = lalarand.verify("mnist_resnet.onnx", modes=["cpu-fp32", "cpu-int8"])
    >>> report["passed"], [(m["mode"], m["cosine"]) for m in report["modes"]]
    """
    args = [os.fspath(model), *_shapes(input_shapes), f"--samples={samples}", f"--seed={seed}"]
    if dataset is not None:
        args += [f"--dataset={os.fspath(dataset)}", f"--train-per-class={train_per_class}"]
    if modes:
        args.append("--modes=" + ",".join(modes))
    return _run_json("verify", args)[1]


def accuracy(
    model: _Path,
    dataset: _Path,
    *,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    profile: Optional[_Path] = None,
    train_per_class: int = 400,
    int8: Union[str, Sequence[str]] = "all",
    allocation: Optional[_Path] = None,
    tasks: Optional[_Path] = None,
    platform: Optional[_Path] = None,
    task: Optional[str] = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Top-1 accuracy on the labeled CSV ``dataset``'s test rows: fp32, and with ``int8``
    stages ("all", "none" or a list of stage names; calibrated as ``profile`` recorded, if
    given), or of one task's stages under an allocation (``allocation``, ``tasks``, ``task``,
    ``platform``: files, as ``lalarand accuracy --allocation``). Returns the report as a dict.

    >>> lalarand.accuracy("mnist_resnet.onnx", "mnist_5k.csv.gz", profile="mnist_resnet.json")
    """
    if not isinstance(int8, str):
        int8 = ",".join(int8)
    args = [os.fspath(model), *_shapes(input_shapes), f"--dataset={os.fspath(dataset)}",
            f"--train-per-class={train_per_class}", f"--threads={threads}"]
    for flag, value in (("profile", profile), ("allocation", allocation), ("tasks", tasks),
                        ("platform", platform), ("task", task)):
        if value is not None:
            args.append(f"--{flag}={os.fspath(value)}")
    if allocation is None:
        args.append(f"--int8={int8}")
    return _run_json("accuracy", args)[1]
