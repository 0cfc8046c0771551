#!/usr/bin/env python3
"""A camera-style detector node: every period it writes a 1x3x224x224 frame into a system
shared-memory region it registered with the server and sends one infer request for the task
`camera` (no tensor crosses the socket), over HTTP. Prints each response next to the task's
proven bound, then a summary line. Started by run.py; alone:

    python3 examples/multiprocess/camera.py --url http://127.0.0.1:8000 --seconds 10
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm

from oip_client import over_bound, timing


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server's HTTP endpoint, http://HOST:PORT")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--period-ms", type=float, default=50.0, help="one frame every this many ms (default 50)")
    parser.add_argument("--task", default="camera")
    args = parser.parse_args()

    client = httpclient.InferenceServerClient(args.url.removeprefix("http://"))
    spec = client.get_model_metadata(args.task)["inputs"][0]
    shape = [1 if d < 0 else d for d in spec["shape"]]
    frame_bytes = int(np.prod(shape)) * 4
    name, key = f"camera_{os.getpid()}", f"/lalarand_camera_{os.getpid()}"
    region = shm.create_shared_memory_region(name, key, frame_bytes)
    client.register_system_shared_memory(name, key, frame_bytes)
    rng = np.random.default_rng(0)
    frames = [rng.random(shape, dtype=np.float32) for _ in range(4)]
    responses, misses = [], 0
    start = time.monotonic()
    try:
        k = 0
        while time.monotonic() - start < args.seconds:
            # Periodic: frame k at start + k * period (a late frame goes at once, none is skipped).
            delay = start + k * args.period_ms / 1e3 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            shm.set_shared_memory_region(region, [frames[k % len(frames)]])
            frame = httpclient.InferInput(spec["name"], shape, "FP32")
            frame.set_shared_memory(name, frame_bytes)
            t = timing(client.infer(args.task, [frame]))
            responses.append(t["response_ns"] / 1e6)
            misses += not t["deadline_met"]
            bound = t.get("bound_ns")
            print(f"camera     job {t['job']:>4}: response {responses[-1]:7.3f} ms   bound "
                  f"{bound / 1e6 if bound else float('nan'):7.3f} ms   {'met' if t['deadline_met'] else 'MISSED'}{over_bound(t)}",
                  flush=True)
            k += 1
    finally:
        client.unregister_system_shared_memory(name)
        shm.destroy_shared_memory_region(region)
        client.close()
    if responses:
        print(f"camera     summary: {len(responses)} frames, median {statistics.median(responses):.3f} ms, "
              f"max {max(responses):.3f} ms, bound {bound / 1e6:.3f} ms, {misses} deadline misses", flush=True)
    return 0 if responses and misses == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
