"""From an ONNX model to a served, proven task with nothing but pip (lalarand's Python package).

The MNIST classifier in crates/engine/testdata (a ResNet exported to ONNX by PyTorch: the
file's producer is "pytorch") is profiled stage by stage from Python (``lalarand.profile``), given a
period, allocated by a policy and proven by the response-time analysis, then served: the
dataset's test rows go through the server as a sporadic task and the top-1 accuracy of the
returned logits is printed, with the observed responses against the proven bound.

    python examples/python/profile_and_serve.py [--rows 1000] [--runs 30] [--out DIR]

ONNX Runtime is fetched on first use, as for ``lalarand run``.
"""

import argparse
import gzip
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np

import lalarand

ROOT = pathlib.Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "crates" / "engine" / "testdata"
# The classifier's period (and deadline): 20 requests a second.
PERIOD_MS = 50.0


def test_rows(path, train_per_class=400):
    """The dataset's test rows (all but the first `train_per_class` of each class), / 255."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    pixels, labels = table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
    seen, test = {}, []
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > train_per_class:
            test.append(i)
    return pixels[test].reshape(-1, 1, 28, 28).astype(np.float32), labels[test]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="test rows served (default 1000)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per stage (default 30)")
    parser.add_argument("--out", type=pathlib.Path, help="where the model copy and its profile go (default: a temporary folder)")
    args = parser.parse_args()

    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="lalarand-"))
    out.mkdir(parents=True, exist_ok=True)
    model = shutil.copy(TESTDATA / "mnist_resnet.onnx", out / "mnist_resnet.onnx")
    core = sorted(os.sched_getaffinity(0))[-1]

    # 1. Profile: every stage's worst-case time on one pinned core (written beside the model).
    profile = lalarand.profile(model, modes=["cpu-fp32"], runs=args.runs, warmup=5, cores=[core])
    print(f"profiled {profile.model}: {len(profile.layers)} stages -> {out / 'mnist_resnet.json'}")

    # 2. A task with a period, on a platform of one cpu (with the runtime's measured overheads).
    platform = lalarand.Platform([lalarand.Resource("cpu", "cpu", cores=[core], dispatch_overhead_us=100.0,
                                                    wakeup_overhead_us=100.0)])
    system = lalarand.System(platform, [lalarand.Task("digits", profile, period_ms=PERIOD_MS)])

    # 3. Allocate and prove.
    result = system.allocate("lalarand-fp32")
    if not result.schedulable:
        sys.exit(f"not proven: {result.analysis.task('digits')}")
    bound = result.analysis.task("digits").bound_ns

    # 4. Serve: the test rows through the server, one job per row.
    images, labels = test_rows(TESTDATA / "mnist_5k.csv.gz")
    images, labels = images[: args.rows], labels[: args.rows]
    correct, worst, past, unexplained = 0, 0, 0, 0
    with lalarand.serve(system, result.allocation) as server:  # the model is found beside its profile
        for image, label in zip(images, labels):
            r = server.infer("digits", image[None])
            correct += int(np.argmax(r.output) == label)
            worst = max(worst, r.response_ns)
            # A response past the bound by no more than the machine's stalls (stages past their
            # profiled time, late wake-ups) was made late by the machine, not the schedule.
            past += r.response_ns > bound
            unexplained += r.response_ns > bound + r.stalled_ns
        stats = server.stop()
    digits = stats["tasks"][0]
    print(f"digits: top-1 {100.0 * correct / len(labels):.2f}% over {len(labels)} test rows")
    print(f"digits: responses mean {digits['response_mean_ns'] / 1e6:.3f} ms, "
          f"max {worst / 1e6:.3f} ms, proven bound {bound / 1e6:.3f} ms, deadline {PERIOD_MS:.3f} ms, "
          f"misses {digits['misses']}, SCHED_FIFO {stats['realtime']}")
    print(f"digits: {past} responses past the bound, {unexplained} of them beyond the machine's stalls "
          f"(profile with more --runs on a quiet machine for a tighter WCET)")


if __name__ == "__main__":
    main()
