"""Serving two DNNs from Python under a proven schedule (lalarand's Python package).

A system built in code from the profiles in examples/e2e, allocated by a policy (default
``lalarand-fp32``) and proven. The MNIST classifier (``digits``) is a sporadic task: the 1000 test rows of its dataset are
submitted one after the other, each as soon as the task's minimum inter-arrival time (its
period) allows, and the top-1 accuracy of the returned logits is printed. Next to it a periodic
zoo model (``squeezenet``) takes a camera-like frame from a Python callable at every release.
At the end every task's observed responses are printed against its proven bound.

    python examples/python/serve_mnist.py            # from the repository root

It needs the ``lalarand`` package (crates/python/README.md) and nothing else: the zoo model the
profile in examples/e2e was measured on is written with ``lalarand.zoo`` if missing. ONNX
Runtime is fetched on first use, as for ``lalarand run``.
"""

import argparse
import gzip
import pathlib
import sys
import time

import numpy as np

import lalarand

ROOT = pathlib.Path(__file__).resolve().parents[2]
E2E = ROOT / "examples" / "e2e"
TESTDATA = ROOT / "crates" / "engine" / "testdata"


def mnist_test_rows(path, train_per_class=400):
    """The rows `lalarand accuracy` measures: all but the first `train_per_class` of each class,
    pixels / 255, as (images [n, 1, 28, 28] float32, labels [n])."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    pixels, labels = table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
    seen = {}
    test = []
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > train_per_class:
            test.append(i)
    return pixels[test].reshape(-1, 1, 28, 28).astype(np.float32), labels[test]


def zoo_model(path):
    """The zoo model the squeezenet profile was measured on, written here if missing (the bytes
    `lalarand zoo squeezenet1_1 --seed 1` writes)."""
    if not path.is_file():
        lalarand.zoo("squeezenet1_1", path, seed=1)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="test rows to classify (default: all 1000)")
    parser.add_argument("--policy", default="lalarand-fp32", choices=lalarand.policies(),
                        help="allocation policy (default lalarand-fp32; policies that pick int8 stages "
                             "need profiles saved with their int8 calibration)")
    parser.add_argument("--budget", type=float, default=1.0, help="accuracy budget of int8 stages, pp")
    args = parser.parse_args()

    # The system in code, from the profiles measured in examples/e2e: the classifier takes a
    # request at most every 3 ms, the camera runs at 50 Hz.
    system = lalarand.System(
        lalarand.Platform.load(E2E / "platform.toml"),
        [
            lalarand.Task("digits", lalarand.Profile.load(E2E / "mnist_resnet.json"), period_ms=3.0),
            lalarand.Task("squeezenet", lalarand.Profile.load(E2E / "squeezenet1_1.json"), period_ms=20.0),
        ],
    )
    result = system.allocate(args.policy, budget=args.budget)
    if not result.schedulable:
        sys.exit(f"{args.policy} proves no allocation: {result.analysis.tasks}")
    allocation = result.allocation
    for t in result.analysis.tasks:
        print(f"{t.name}: {t.layers} stages ({t.int8_layers} int8), bound {t.bound_ns / 1e6:.3f} ms, "
              f"deadline {t.deadline_ns / 1e6:.3f} ms")
    models = {"digits": TESTDATA / "mnist_resnet.onnx", "squeezenet": zoo_model(E2E / "squeezenet1_1.onnx")}
    images, labels = mnist_test_rows(TESTDATA / "mnist_5k.csv.gz")
    images, labels = images[: args.rows], labels[: args.rows]

    rng = np.random.default_rng(1)
    frames = [rng.random((1, 3, 224, 224), dtype=np.float32) for _ in range(4)]

    def camera(job):  # called on the squeezenet task's own source thread, ahead of each release
        return frames[job % len(frames)]

    correct = 0
    started = time.monotonic()
    with lalarand.serve(system, allocation, models=models, periodic={"squeezenet": camera}) as server:
        for image, label in zip(images, labels):
            # Waits (without the GIL) for the earliest legal release, then for the result.
            result = server.infer("digits", image[None])
            correct += int(np.argmax(result.output) == label)
        stats = server.stats()
    elapsed = time.monotonic() - started

    print(f"digits: top-1 {100.0 * correct / len(labels):.2f}% over {len(labels)} test rows "
          f"through the server in {elapsed:.1f} s (SCHED_FIFO: {stats['realtime']})")
    print(f"{'task':<11} {'kind':<9} {'jobs':>5} {'misses':>6} {'min ms':>8} {'mean ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'bound ms':>9} {'deadline':>9}")
    for t in stats["tasks"]:
        ms = lambda v: f"{v / 1e6:8.3f}" if v is not None else "       -"  # noqa: E731
        print(f"{t['name']:<11} {t['kind']:<9} {t['completed']:>5} {t['misses']:>6} {ms(t['response_min_ns'])} "
              f"{ms(t['response_mean_ns'])} {ms(t['response_p99_ns'])} {ms(t['response_max_ns'])} "
              f"{ms(t['bound_ns']):>9} {ms(t['deadline_ns']):>9}")


if __name__ == "__main__":
    main()
