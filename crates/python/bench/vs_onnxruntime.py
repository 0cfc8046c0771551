"""`server.infer` against onnxruntime's own `InferenceSession.run` on the same model, in one
process, in alternating rounds: the MNIST classifier (crates/engine/testdata/mnist_resnet.onnx,
1x1x28x28 float32) served in one stage (the whole model, `stage_grouping` of its 14 layer
stages) and in its 14 layer stages, on one pinned cpu resource, fp32, one thread; onnxruntime
runs the whole model with one intra-op thread. Each `infer` comes after the task's minimum
inter-arrival time (5 ms), so every job is released at once; onnxruntime's runs are paced the
same way, so both start from the same idle gap.

    python crates/python/bench/vs_onnxruntime.py [--calls 2000]

Prints, per path, the median and p99 of the call as Python sees it, the server's own
response time (release -> last stage's finish) and the fixed cost (call - response) (and of the same calls
made from Rust, `Server::infer` timed in Rust without the GIL, on a zero input), and the
issue's targets: one stage within 50 us (median) of onnxruntime, 14 stages within 1.3x.
"""

import argparse
import copy
import json
import os
import pathlib
import statistics
import time

import numpy as np
import onnxruntime

import lalarand
from lalarand import _lalarand

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODEL = ROOT / "crates/engine/testdata/mnist_resnet.onnx"
PROFILE = ROOT / "examples/mnist/mnist_resnet.json"
GAP_S = 0.0055  # past the 5 ms minimum inter-arrival time


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def profiles():
    """The measured 14-layer profile (fp32 only, WCETs of 100 us per layer so a 5 ms period is
    proven) and the same model as one stage."""
    def fp32(layer, wcet_us):
        timing = layer["modes"]["cpu-fp32"]
        timing["wcet_us"] = wcet_us
        for observed in ("max_us", "p99_us", "mean_us"):
            if observed in timing:
                timing[observed] = min(timing[observed], wcet_us)
        layer["modes"] = {"cpu-fp32": timing}

    layered = json.loads(PROFILE.read_text())
    for layer in layered["layers"]:
        fp32(layer, 100.0)
    whole = copy.deepcopy(layered)
    # Named after a member stage (a merged stage takes the name of its member the profile names).
    merged = copy.deepcopy(layered["layers"][-2])
    fp32(merged, 1400.0)
    whole["layers"] = [merged]
    whole["stage_grouping"] = {"granularity": "auto", "groups": [len(layered["layers"])]}
    return {"1 stage": whole, "14 stages": layered}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000, help="calls per path (default 2000)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    core = sorted(os.sched_getaffinity(0))[-1]
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    expected = session.run(None, {name: x})[0]

    per_round = max(1, args.calls // args.rounds)
    us = lambda v: v / 1e3  # noqa: E731
    print(f"{per_round * args.rounds} calls per path, MNIST 1x1x28x28 float32, load average {os.getloadavg()[0]:.2f}")
    # One server at a time, its calls alternating with onnxruntime's in rounds.
    for label, profile in profiles().items():
        platform = lalarand.Platform([lalarand.Resource("cpu", "cpu", cores=[core])])
        dnn = lalarand.Profile.from_json(json.dumps(profile))
        system = lalarand.System(platform, [lalarand.Task("digits", dnn, 5.0)])
        allocation = system.allocation({"digits": ["cpu-fp32@cpu"] * len(profile["layers"])})
        ort, python, rust, responses, rust_fixed = [], [], [], [], []
        with lalarand.serve(system, allocation, {"digits": str(MODEL)}) as server:
            for _ in range(20):  # warm-up
                time.sleep(GAP_S)
                out = server.infer("digits", x)
                assert np.allclose(next(iter(out.outputs.values())), expected, atol=1e-4)
            for _ in range(args.rounds):
                for _ in range(per_round):
                    time.sleep(GAP_S)
                    t0 = time.perf_counter_ns()
                    session.run(None, {name: x})
                    ort.append(time.perf_counter_ns() - t0)
                for _ in range(per_round):
                    time.sleep(GAP_S)
                    t0 = time.perf_counter_ns()
                    result = server.infer("digits", x)
                    python.append(time.perf_counter_ns() - t0)
                    responses.append(result.response_ns)
                    del result
                timed = _lalarand._bench_rust_infer(server, "digits", [1, 1, 28, 28], per_round, GAP_S)
                rust += [took for took, _ in timed]
                rust_fixed += [took - response for took, response in timed]
            realtime = server.realtime
        ort_median = statistics.median(ort)
        fixed = [t - r for t, r in zip(python, responses)]
        print(f"{label} (SCHED_FIFO: {realtime})")
        print(f"  onnxruntime run      : median {us(ort_median):7.1f} us   p99 {us(percentile(ort, 0.99)):7.1f} us")
        for path, t in (("server.infer (Python)", python), ("Server::infer (Rust)", rust)):
            median = statistics.median(t)
            print(f"  {path:<21}: median {us(median):7.1f} us   p99 {us(percentile(t, 0.99)):7.1f} us   "
                  f"- onnxruntime {us(median - ort_median):6.1f} us   ratio {median / ort_median:.2f}x")
        print(f"  server response      : median {us(statistics.median(responses)):7.1f} us   p99 {us(percentile(responses, 0.99)):7.1f} us")
        for path, f in (("Python", fixed), ("Rust", rust_fixed)):
            print(f"  {path} call - response (fixed cost): median {us(statistics.median(f)):6.1f} us   p99 {us(percentile(f, 0.99)):6.1f} us")


if __name__ == "__main__":
    main()
