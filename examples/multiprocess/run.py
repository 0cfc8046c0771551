#!/usr/bin/env python3
"""Two applications, two OS processes, one proven schedule: starts `lalarand serve` on
examples/multiprocess (platform examples/e2e/platform.toml), then a periodic camera detector
(camera.py, SqueezeNet 1x3x224x224 every 50 ms over HTTP with the frame in shared memory) and
a sporadic MNIST classifier (classifier.py, over gRPC), each its own process; every response
is printed next to its task's proven bound. After `--seconds` the clients end, the server is
stopped (SIGTERM: it drains) and prints its own report.

    python3 examples/multiprocess/run.py [--seconds 10]

Needs `pip install "tritonclient[http,grpc]" numpy`, a built `lalarand` ($LALARAND_BIN, PATH
or target/) and the zoo SqueezeNet (written here if missing, as examples/e2e/README says).
ONNX Runtime is fetched on first use, as for `lalarand run`.
"""

import argparse
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from lalarand_serve import ROOT, ServeProcess, find_binary  # noqa: E402

E2E = ROOT / "examples" / "e2e"
MNIST = ROOT / "crates" / "engine" / "testdata" / "mnist_resnet.onnx"
SQUEEZENET = E2E / "squeezenet1_1.onnx"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the clients run (default 10)")
    parser.add_argument("--lalarand-bin", help="lalarand binary (default: $LALARAND_BIN, PATH, target/)")
    args = parser.parse_args()
    binary = find_binary(args.lalarand_bin)
    if not SQUEEZENET.is_file():
        subprocess.run([binary, "zoo", "squeezenet1_1", "--seed", "1", "--out", str(SQUEEZENET)], check=True)

    server = ServeProcess(["--platform", E2E / "platform.toml", "--tasks", HERE / "taskset.toml",
                           "--allocation", HERE / "allocation.toml",
                           "--models", f"classifier={MNIST},camera={SQUEEZENET}", "--early", "wait"], binary=binary)
    print(f"lalarand serve: pid {server.pid}, {', '.join(server.urls)}", flush=True)
    try:
        clients = [
            subprocess.Popen([sys.executable, str(HERE / "camera.py"), "--url", f"http://{server.http}",
                              "--seconds", str(args.seconds)]),
            subprocess.Popen([sys.executable, str(HERE / "classifier.py"), "--url", f"grpc://{server.grpc}",
                              "--seconds", str(args.seconds)]),
        ]
        statuses = [c.wait() for c in clients]
    finally:
        status, report = server.stop()
    print(f"\nlalarand serve (exit status {status}):\n{report}", flush=True)
    print(f"camera.py exit status {statuses[0]}, classifier.py exit status {statuses[1]} "
          "(0: every response met its deadline)")
    return max(statuses)


if __name__ == "__main__":
    sys.exit(main())
