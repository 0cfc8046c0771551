"""What copying the input at `submit` costs: `server.submit` of a 1x3x224x224 float32 array
against `submit` of a 1-element array on the same server, in alternating calls, each 12 ms
after the previous one so that every job is released at once (the task's minimum
inter-arrival time is 10 ms). The difference of the medians is the copy (a memcpy of
602 112 bytes) plus the allocation of its buffer; `numpy.copy` of the same array is printed
next to it for scale.

    python crates/python/bench/input_copy.py [--calls 500]
"""

import argparse
import os
import statistics
import time

import numpy as np

import lalarand

SHAPE = (1, 3, 224, 224)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500, help="calls per size (default 500)")
    args = parser.parse_args()

    core = sorted(os.sched_getaffinity(0))[-1]
    platform = lalarand.Platform([lalarand.Resource("cpu", "cpu", cores=[core], dispatch_overhead_us=200.0, wakeup_overhead_us=200.0)])
    system = lalarand.System(platform, [lalarand.Task("bench", lalarand.Profile.chain("echo", [("stage", 0.05, 0.05)]), 10.0)])
    allocation = system.allocation({"bench": ["cpu-fp32@cpu"]})

    big = np.random.default_rng(1).random(SHAPE, dtype=np.float32)
    small = np.zeros(1, dtype=np.float32)
    times = {"big": [], "small": []}
    with lalarand.serve(system, allocation, busy=True) as server:
        for _ in range(args.calls):
            for name, x in (("big", big), ("small", small)):
                time.sleep(0.012)
                t0 = time.perf_counter_ns()
                handle = server.submit("bench", x)
                times[name].append(time.perf_counter_ns() - t0)
                handle.result(timeout=10)
        realtime = server.realtime
    copies = []
    for _ in range(args.calls):
        t0 = time.perf_counter_ns()
        big.copy()
        copies.append(time.perf_counter_ns() - t0)

    us = lambda v: v / 1e3  # noqa: E731
    big_us, small_us = us(statistics.median(times["big"])), us(statistics.median(times["small"]))
    print(f"{args.calls} calls per size, SCHED_FIFO: {realtime}")
    print(f"submit {SHAPE}: median {big_us:.1f} us; submit (1,): median {small_us:.1f} us")
    print(f"copy at submit (median difference): {big_us - small_us:.1f} us; numpy.copy: median {us(statistics.median(copies)):.1f} us")


if __name__ == "__main__":
    main()
