"""What Python adds to `infer`: the same server, the same task, the same 1x3x224x224 float32
input, called from Rust (`Server::infer`, timed in Rust) and from Python (`server.infer`,
timed in Python), in alternating rounds of one run. The stages busy-wait a fixed 50 us and echo
the input as the output, so both paths also bring a 1x3x224x224 output back (as a numpy array
on the Python side).

    python crates/python/bench/infer_overhead.py [--calls 2000]

Prints the median and p99 of each path and the difference of the medians.
"""

import argparse
import os
import statistics
import time

import numpy as np

import lalarand
from lalarand import _lalarand

SHAPE = (1, 3, 224, 224)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000, help="calls per path (default 2000)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    core = sorted(os.sched_getaffinity(0))[-1]
    platform = lalarand.Platform([lalarand.Resource("cpu", "cpu", cores=[core], dispatch_overhead_us=200.0, wakeup_overhead_us=200.0)])
    dnn = lalarand.Profile.chain("echo", [("stage", 0.05, 0.05)])
    system = lalarand.System(platform, [lalarand.Task("bench", dnn, 1.0)])
    allocation = system.allocation({"bench": ["cpu-fp32@cpu"]})
    gap = 0.0012  # > the 1 ms minimum inter-arrival time: every call is released at once

    x = np.zeros(SHAPE, dtype=np.float32)
    rust, python = [], []
    per_round = max(1, args.calls // args.rounds)
    with lalarand.serve(system, allocation, busy=True) as server:
        for _ in range(5):  # warm-up
            server.infer("bench", x)
        for _ in range(args.rounds):
            rust += [took for took, _ in _lalarand._bench_rust_infer(server, "bench", list(SHAPE), per_round, gap)]
            for _ in range(per_round):
                time.sleep(gap)
                t0 = time.perf_counter_ns()
                result = server.infer("bench", x)
                python.append(time.perf_counter_ns() - t0)
                del result  # freed outside the timed call, as the Rust side drops its result
        realtime = server.stats()["realtime"]

    us = lambda v: v / 1e3  # noqa: E731
    print(f"{len(rust)} calls per path, input {SHAPE} float32, SCHED_FIFO: {realtime}")
    for name, t in (("rust   infer", rust), ("python infer", python)):
        print(f"{name}: median {us(statistics.median(t)):8.1f} us   p99 {us(percentile(t, 0.99)):8.1f} us")
    print(f"python overhead (median difference): {us(statistics.median(python) - statistics.median(rust)):.1f} us")


if __name__ == "__main__":
    main()
