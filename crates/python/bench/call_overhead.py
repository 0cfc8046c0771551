"""Where a call's time goes: `server.infer` from Python against the server's own response time
(release -> finish), split at the server's timestamps into
  before  Python call -> the server's `submit` (argument checks, the input copy, the GIL release),
  server  submit -> the last stage's finish (the job itself: admission, wake-up, the stages),
  after   finish -> the call returned (the hand-off to the delivery thread, waking the caller,
          taking the GIL again, the result's conversion to Python objects),
all read on the server's clock (`server.now_ns()` just before and after the call). The fixed
cost per job is what Python sees minus the response time (`total - response`).

One cpu resource, one sporadic task whose single stage busy-waits 50 us and echoes its input;
each call 1.2 ms after the previous one (the minimum inter-arrival time is 1 ms), so every
job is released at once.

    python crates/python/bench/call_overhead.py [--calls 2000] [--shape 1,3,224,224]
"""

import argparse
import os
import statistics
import time

import numpy as np

import lalarand
from lalarand import _lalarand


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--shape", default="1", help="input shape, comma-separated (default 1)")
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.shape.split(","))

    core = sorted(os.sched_getaffinity(0))[-1]
    platform = lalarand.Platform([lalarand.Resource("cpu", "cpu", cores=[core], dispatch_overhead_us=200.0, wakeup_overhead_us=200.0)])
    system = lalarand.System(platform, [lalarand.Task("bench", lalarand.Profile.chain("echo", [("stage", 0.05, 0.05)]), 1.0)])
    allocation = system.allocation({"bench": ["cpu-fp32@cpu"]})
    x = np.zeros(shape, dtype=np.float32)
    parts = {"before": [], "server": [], "after": [], "response": [], "total": [], "total - response": []}
    with lalarand.serve(system, allocation, busy=True) as server:
        for _ in range(20):  # warm-up
            time.sleep(0.0012)
            server.infer("bench", x)
        for _ in range(args.calls):
            time.sleep(0.0012)
            t0 = server.now_ns()
            r = server.infer("bench", x)
            t1 = server.now_ns()
            parts["before"].append(r.submitted_ns - t0)
            parts["server"].append(r.finish_ns - r.submitted_ns)
            parts["after"].append(t1 - r.finish_ns)
            parts["response"].append(r.response_ns)
            parts["total"].append(t1 - t0)
            parts["total - response"].append(t1 - t0 - r.response_ns)
        # The same calls from Rust (`Server::infer`, timed in Rust without the GIL): the fixed
        # cost Rust callers pay too.
        rust = _lalarand._bench_rust_infer(server, "bench", list(shape), args.calls, 0.0012)
        parts["rust: total"] = [took for took, _ in rust]
        parts["rust: total - response"] = [took - response for took, response in rust]
        realtime = server.realtime
    print(f"{args.calls} calls, input {shape} float32, SCHED_FIFO: {realtime}")
    for name, values in parts.items():
        print(f"{name:>23}: median {statistics.median(values) / 1e3:7.1f} us   p99 {percentile(values, 0.99) / 1e3:7.1f} us")


if __name__ == "__main__":
    main()
