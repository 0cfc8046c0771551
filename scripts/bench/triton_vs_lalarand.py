#!/usr/bin/env python3
"""Triton Inference Server and `lalarand serve` in one run, with the same tritonclient code.

Both servers serve the same two ONNX models under the same names, those of
examples/multiprocess: `classifier` (the MNIST ResNet, crates/engine/testdata/mnist_resnet.onnx,
input 1x1x28x28) and `camera` (`lalarand zoo squeezenet1_1 --seed 1`, input 1x3x224x224, the
model examples/e2e's profile was measured on).

* Triton: the plain `tritonserver` of the `nvidia-pytriton` wheel with its Python backend, each
  model a `model.py` running onnxruntime (1 thread); the model repository is written by this
  script (docs/runtime.md, "Against Triton"; ../shared/anchors/triton.md).
* lalarand: `lalarand serve` on examples/multiprocess/{taskset,allocation}.toml and
  examples/e2e/platform.toml (the models layer by layer in fp32 on a pinned cpu resource, the
  allocation the analysis proves).

For each server, model and protocol (HTTP, gRPC, HTTP with system shared memory for input and
output, and for lalarand gRPC over a Unix socket): `--warmup` calls, then `--calls` sequential
calls, each sent no earlier than 1.1 periods of the task (10 ms, 50 ms) after the previous one,
so no call waits for lalarand's minimum inter-arrival time, and the same pacing for Triton.
Between two calls the client runs the model itself with onnxruntime (1 thread): "added" is the
median round trip minus the median of these direct runs. For lalarand the table also gives the
median of the job's own response (`response_ns`, release to finish, inside the server) and
"protocol" = median of (round trip - response_ns): what the network front end adds. After each
series the same client sends health checks (`is_server_live`) after the same idle gap: their
median is what any request costs on this machine once both sides' threads slept.

    pip install nvidia-pytriton "tritonclient[http,grpc]" onnxruntime numpy
    python3 scripts/bench/triton_vs_lalarand.py [--lalarand-bin target/release/lalarand] [--json out.json]
"""

import argparse
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "multiprocess"))
from lalarand_serve import ServeProcess, find_binary  # noqa: E402
from oip_client import timing  # noqa: E402

E2E = ROOT / "examples" / "e2e"
SYSTEM = ROOT / "examples" / "multiprocess"
# name: (model file, input shape, minimum inter-arrival time in s: examples/multiprocess/taskset.toml)
MODELS = {
    "classifier": (ROOT / "crates" / "engine" / "testdata" / "mnist_resnet.onnx", (1, 1, 28, 28), 0.010),
    "camera": (E2E / "squeezenet1_1.onnx", (1, 3, 224, 224), 0.050),
}

TRITON_MODEL_PY = '''
import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession({path!r}, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, self.input).as_numpy()
            y = self.session.run([self.output], {{self.input: x}})[0]
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output, y)]))
        return responses
'''

TRITON_CONFIG = '''name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "{input}" data_type: TYPE_FP32 dims: {in_dims} }} ]
output [ {{ name: "{output}" data_type: TYPE_FP32 dims: {out_dims} }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_triton_repository(repo):
    for name, (path, _, _) in MODELS.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (inp,), (out,) = session.get_inputs(), session.get_outputs()
        dims = lambda shape: "[" + ", ".join(str(d if isinstance(d, int) else 1) for d in shape) + "]"  # noqa: E731
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(TRITON_CONFIG.format(
            name=name, input=inp.name, output=out.name, in_dims=dims(inp.shape), out_dims=dims(out.shape)))
        (repo / name / "1" / "model.py").write_text(TRITON_MODEL_PY.format(path=str(path)))


class TritonProcess:
    """The wheel's plain tritonserver with its Python backend (triton.md: the backend stub needs
    the venv's bin first in PATH, the venv's libpython and the wheel's libraries first in
    LD_LIBRARY_PATH)."""

    def __init__(self, repo, log):
        import pytriton
        base = pathlib.Path(pytriton.__file__).parent / "tritonserver"
        libs = base.parent.parent / "nvidia_pytriton.libs"
        # The wheel keeps one backend stub per Python version apart from the backend; a backend
        # directory with the stub of this Python beside it, as PyTriton assembles it.
        backends = repo.parent / "backends"
        shutil.copytree(base / "backends", backends)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        shutil.copy2(base / "python_backend_stubs" / version / "triton_python_backend_stub", backends / "python")
        env = dict(os.environ)
        env["PATH"] = f"{pathlib.Path(sys.executable).parent}:{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [sysconfig.get_config_var("LIBDIR"), str(libs),
                                                        env.get("LD_LIBRARY_PATH")]))
        self.http, self.grpc = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        self.unix = None
        self.process = subprocess.Popen(
            [str(base / "bin" / "tritonserver"), f"--model-repository={repo}",
             f"--backend-directory={backends}",
             f"--http-port={self.http.split(':')[1]}", f"--grpc-port={self.grpc.split(':')[1]}",
             "--allow-metrics=false", "--log-verbose=0"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        client = httpclient.InferenceServerClient(self.http)
        deadline = time.monotonic() + 180
        while True:
            try:
                if client.is_server_ready() and all(client.is_model_ready(m) for m in MODELS):
                    break
            except Exception:  # not listening yet
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log.seek(0)
                raise RuntimeError("tritonserver did not become ready:\n" + log.read()[-12000:])
            time.sleep(0.5)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Caller:
    """One protocol's tritonclient calls of one model: `call(x)` -> (output, response_ns or None)."""

    def __init__(self, protocol, url, model):
        self.module = grpcclient if protocol.startswith("grpc") else httpclient
        self.client = self.module.InferenceServerClient(url)
        self.model = model
        meta = self.client.get_model_metadata(model)
        if self.module is grpcclient:
            self.input, self.output = meta.inputs[0].name, meta.outputs[0].name
        else:
            self.input, self.output = meta["inputs"][0]["name"], meta["outputs"][0]["name"]
        self.shm = None

    def use_shared_memory(self, shape, out_bytes):
        """Input and output in two system shared-memory regions registered with the server."""
        in_bytes = int(np.prod(shape)) * 4
        tag = f"{os.getpid()}_{self.model}"
        self.shm = (shm.create_shared_memory_region(f"in_{tag}", f"/bench_in_{tag}", in_bytes),
                    shm.create_shared_memory_region(f"out_{tag}", f"/bench_out_{tag}", out_bytes),
                    in_bytes, out_bytes, tag)
        self.client.unregister_system_shared_memory()
        self.client.register_system_shared_memory(f"in_{tag}", f"/bench_in_{tag}", in_bytes)
        self.client.register_system_shared_memory(f"out_{tag}", f"/bench_out_{tag}", out_bytes)

    def call(self, x):
        inp = self.module.InferInput(self.input, list(x.shape), "FP32")
        out = self.module.InferRequestedOutput(self.output)
        if self.shm:
            in_region, out_region, in_bytes, out_bytes, tag = self.shm
            shm.set_shared_memory_region(in_region, [x])
            inp.set_shared_memory(f"in_{tag}", in_bytes)
            out.set_shared_memory(f"out_{tag}", out_bytes)
        else:
            inp.set_data_from_numpy(x)
        result = self.client.infer(self.model, [inp], outputs=[out])
        if self.shm:
            y = shm.get_contents_as_numpy(self.shm[1], np.float32, [self.shm[3] // 4])
        else:
            y = result.as_numpy(self.output)
        return y, timing(result).get("response_ns")

    def close(self):
        if self.shm:
            self.client.unregister_system_shared_memory()
            for region in self.shm[:2]:
                shm.destroy_shared_memory_region(region)
        self.client.close()


IDLE_HEALTH_CALLS = 100


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(protocol, url, model, calls, warmup):
    path, shape, period = MODELS[model]
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    direct = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = direct.get_inputs()[0].name
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    expected = direct.run(None, {name: x})[0]
    caller = Caller(protocol.replace("+shm", "").replace("-unix", ""), url, model)
    if protocol.endswith("+shm"):
        caller.use_shared_memory(shape, expected.nbytes)
    rtts, directs, responses, idle_health = [], [], [], []
    next_send = time.perf_counter()
    try:
        for i in range(warmup + calls):
            t0 = time.perf_counter()
            direct.run(None, {name: x})
            t1 = time.perf_counter()
            while time.perf_counter() < next_send:  # pacing: at least 1.1 periods apart
                time.sleep(max(0.0, next_send - time.perf_counter() - 0.0005))
            t2 = time.perf_counter()
            next_send = t2 + 1.1 * period
            y, response_ns = caller.call(x)
            t3 = time.perf_counter()
            if i == 0:  # both run the models in fp32
                np.testing.assert_allclose(y.reshape(expected.shape), expected, rtol=1e-3, atol=1e-4)
            if i >= warmup:
                directs.append((t1 - t0) * 1e6)
                rtts.append((t3 - t2) * 1e6)
                if response_ns is not None:
                    responses.append((rtts[-1], response_ns / 1e3))
        # The same client's health check after the same idle gap: what any request costs here
        # once both sides' threads slept (wake-ups from idle), whatever the server does.
        for _ in range(IDLE_HEALTH_CALLS):
            time.sleep(1.1 * period)
            t0 = time.perf_counter()
            caller.client.is_server_live()
            idle_health.append((time.perf_counter() - t0) * 1e6)
    finally:
        caller.close()
    row = {"model": model, "protocol": protocol, "calls": calls,
           "median_us": statistics.median(rtts), "p99_us": percentile(rtts, 0.99),
           "direct_median_us": statistics.median(directs)}
    row["added_us"] = row["median_us"] - row["direct_median_us"]
    row["idle_health_median_us"] = statistics.median(idle_health)
    if responses:
        row["response_median_us"] = statistics.median(r for _, r in responses)
        row["protocol_median_us"] = statistics.median(rtt - r for rtt, r in responses)
        row["protocol_p99_us"] = percentile([rtt - r for rtt, r in responses], 0.99)
    return row


def run_server(label, server, protocols, args):
    rows = []
    for model in MODELS:
        for protocol in protocols:
            url = server.unix if protocol == "grpc-unix" else (server.grpc if protocol.startswith("grpc") else server.http)
            calls = args.calls if model == "classifier" else args.squeezenet_calls
            row = measure(protocol, url, model, calls, args.warmup)
            row["server"] = label
            print(f"  {label} {model} {protocol}: median {row['median_us']:.0f} us, p99 {row['p99_us']:.0f} us, "
                  f"added {row['added_us']:.0f} us", file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lalarand-bin", help="lalarand binary (default: $LALARAND_BIN, PATH, target/)")
    parser.add_argument("--calls", type=int, default=1000, help="measured calls for MNIST (default 1000)")
    parser.add_argument("--squeezenet-calls", type=int, default=200, help="measured calls for SqueezeNet (default 200)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--servers", default="triton,lalarand", help="comma-separated: triton, lalarand")
    parser.add_argument("--platform", type=pathlib.Path, default=E2E / "platform.toml",
                        help="lalarand's platform (default examples/e2e/platform.toml; the allocation uses cpu0 only)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    binary = find_binary(args.lalarand_bin)
    if not MODELS["camera"][0].is_file():
        subprocess.run([binary, "zoo", "squeezenet1_1", "--seed", "1", "--out", str(MODELS["camera"][0])], check=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="triton-vs-lalarand-") as scratch:
        scratch = pathlib.Path(scratch)
        if "triton" in args.servers:
            write_triton_repository(scratch / "repository")
            with open(scratch / "triton.log", "w+") as log:
                triton = TritonProcess(scratch / "repository", log)
                try:
                    rows += run_server("triton", triton, ["http", "grpc", "http+shm", "grpc+shm"], args)
                finally:
                    triton.stop()
        if "lalarand" in args.servers:
            models = ",".join(f"{name}={path}" for name, (path, _, _) in MODELS.items())
            serve = ServeProcess(["--platform", args.platform, "--tasks", SYSTEM / "taskset.toml",
                                  "--allocation", SYSTEM / "allocation.toml", "--models", models, "--early", "wait"],
                                 binary=binary, unix_socket=True)
            try:
                rows += run_server("lalarand", serve, ["http", "grpc", "grpc-unix", "http+shm", "grpc+shm"], args)
            finally:
                serve.stop()

    print("| server | model | protocol | median µs | p99 µs | added µs | in-server response µs | protocol µs (median, p99) "
          "| health check after the same idle µs |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        inside = f"{r['response_median_us']:.0f}" if "response_median_us" in r else "-"
        proto = f"{r['protocol_median_us']:.0f}, {r['protocol_p99_us']:.0f}" if "protocol_median_us" in r else "-"
        print(f"| {r['server']} | {r['model']} | {r['protocol']} | {r['median_us']:.0f} | {r['p99_us']:.0f} | "
              f"{r['added_us']:.0f} | {inside} | {proto} | {r['idle_health_median_us']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
