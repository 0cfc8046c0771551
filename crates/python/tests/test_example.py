"""The example application in examples/python runs as its README says and reports what it claims."""

import re
import subprocess
import sys

from conftest import ROOT


def test_serve_mnist_example_classifies_through_the_server():
    # Nothing but the package: the zoo model is written with lalarand.zoo if missing.
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python" / "serve_mnist.py"), "--rows", "200"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    top1 = re.search(r"digits: top-1 ([0-9.]+)% over 200 test rows", done.stdout)
    assert top1, done.stdout
    # The trained classifier is ~98.7% on all 1000 rows (docs/evaluation.md, section 5).
    assert float(top1.group(1)) >= 95.0, done.stdout
    # One row per task, with a bound next to its responses.
    for task in ("digits", "squeezenet"):
        assert re.search(rf"^{task}\s+(sporadic|periodic)\s+\d+", done.stdout, re.M), done.stdout


def test_profile_and_serve_example_goes_from_an_onnx_file_to_a_proven_served_task(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python" / "profile_and_serve.py"), "--rows", "200", "--runs", "5",
         "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mnist_resnet.json").is_file()
    top1 = re.search(r"digits: top-1 ([0-9.]+)% over 200 test rows", done.stdout)
    assert top1 and float(top1.group(1)) >= 95.0, done.stdout
    line = re.search(r"max ([0-9.]+) ms, proven bound ([0-9.]+) ms, deadline 50.000 ms, misses (\d+)", done.stdout)
    assert line, done.stdout
    assert float(line.group(2)) <= 50.0 and int(line.group(3)) == 0, done.stdout
