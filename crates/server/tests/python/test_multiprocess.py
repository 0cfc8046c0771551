"""examples/multiprocess run as documented: the two-process example (run.py) and the load test
(load.py, test-sized: 10 s instead of the documented 60 s), each against its own server."""

import json
import subprocess
import sys

from conftest import ROOT

EXAMPLE = ROOT / "examples" / "multiprocess"


def test_camera_and_classifier_processes_share_one_server(lalarand_bin):
    done = subprocess.run([sys.executable, str(EXAMPLE / "run.py"), "--seconds", "4", "--lalarand-bin", lalarand_bin],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    lines = done.stdout.splitlines()
    camera = [line for line in lines if line.startswith("camera     job")]
    classifier = [line for line in lines if line.startswith("classifier job")]
    # 4 s at 50 ms and at 10 to 30 ms: dozens of responses each, every one next to its bound.
    assert len(camera) >= 20 and len(classifier) >= 40, done.stdout[-3000:] + done.stderr[-3000:]
    assert all("bound" in line and "nan" not in line for line in camera + classifier)
    assert any(line.startswith("camera     summary") for line in lines)
    summary = [line for line in lines if line.startswith("classifier summary")]
    assert summary and "top-1" in summary[0]
    top1 = float(summary[0].rsplit("top-1 ", 1)[1].rstrip("%"))
    assert top1 >= 90.0, summary
    assert "exit status" in done.stdout


def test_load_every_request_accounted_priority_within_bound_memory_flat(lalarand_bin, tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run([sys.executable, str(EXAMPLE / "load.py"), "--seconds", "10", "--json", str(out),
                           "--lalarand-bin", lalarand_bin], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.is_file(), done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert len(summary["clients"]) >= 5, "at least 4 client processes (5: the classifier and 4 flooders)"
    flood = [c for c in summary["clients"] if c["role"] == "flood"]
    assert sum(c["sent"] for c in flood) > 10 * sum(c["answered"] for c in flood), "the camera was flooded"
    assert summary["refused_by_reason"], "the flood was refused with reasons"
    assert summary["classifier"]["responses"] >= 300
    assert done.returncode == 0 and summary["ok"], done.stdout + done.stderr[-3000:]
