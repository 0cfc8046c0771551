#!/usr/bin/env python3
"""A sporadic classifier node: MNIST test images sent to the task `classifier` over gRPC at
random gaps of 1 to 3 times its minimum inter-arrival time (10 ms); prints each response next
to the task's proven bound with the predicted and true digit, then a summary line. Started by
run.py; alone:

    python3 examples/multiprocess/classifier.py --url grpc://127.0.0.1:8001 --seconds 10
"""

import argparse
import gzip
import pathlib
import random
import statistics
import sys
import time

import numpy as np
import tritonclient.grpc as grpcclient

from oip_client import over_bound, timing

DATASET = pathlib.Path(__file__).resolve().parents[2] / "crates" / "engine" / "testdata" / "mnist_5k.csv.gz"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server's gRPC endpoint, grpc://HOST:PORT")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--min-gap-ms", type=float, default=10.0, help="the task's minimum inter-arrival time")
    parser.add_argument("--task", default="classifier")
    args = parser.parse_args()

    with gzip.open(DATASET, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32, max_rows=2000)
    images = (table[:, :-1] / 255.0).reshape(-1, 1, 1, 28, 28).astype(np.float32)
    labels = table[:, -1].astype(int)
    client = grpcclient.InferenceServerClient(args.url.removeprefix("grpc://"))
    gaps = random.Random(1)
    responses, misses, correct = [], 0, 0
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < args.seconds:
        image = grpcclient.InferInput("input", [1, 1, 28, 28], "FP32")
        image.set_data_from_numpy(images[i % len(images)])
        sent = time.monotonic()
        result = client.infer(args.task, [image])
        t = timing(result)
        digit = int(result.as_numpy("logits").argmax())
        correct += digit == labels[i % len(labels)]
        responses.append(t["response_ns"] / 1e6)
        misses += not t["deadline_met"]
        bound = t.get("bound_ns")
        print(f"classifier job {t['job']:>4}: response {responses[-1]:7.3f} ms   bound "
              f"{bound / 1e6 if bound else float('nan'):7.3f} ms   {'met' if t['deadline_met'] else 'MISSED'}{over_bound(t)}   "
              f"digit {digit} (label {labels[i % len(labels)]})", flush=True)
        i += 1
        # Sporadic: the next request 1 to 3 minimum inter-arrival times after this one was sent.
        time.sleep(max(0.0, sent + gaps.uniform(1.0, 3.0) * args.min_gap_ms / 1e3 - time.monotonic()))
    client.close()
    if responses:
        print(f"classifier summary: {len(responses)} requests, median {statistics.median(responses):.3f} ms, "
              f"max {max(responses):.3f} ms, bound {bound / 1e6:.3f} ms, {misses} deadline misses, "
              f"top-1 {100.0 * correct / len(responses):.1f}%", flush=True)
    return 0 if responses and misses == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
