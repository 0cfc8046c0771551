"""`lalarand serve --listen ...` started per test module, reached with PyPI's unmodified
tritonclient (http and grpc).

The binary is $LALARAND_BIN (required: the suite fails without it rather than skip; .ci/run
sets it to the build it tested). Two systems, each on examples/e2e/platform.toml and an
allocation the analysis proves:

* with the models (ONNX Runtime): examples/multiprocess, `classifier` (the MNIST ResNet, 10 ms
  minimum inter-arrival time, the higher priority) and `camera` (SqueezeNet 1.1, 50 ms), all
  fp32 (examples/e2e's allocation runs SqueezeNet stages in int8, and its profile carries no
  int8 calibration to rebuild them from, so the engine refuses to serve it);
* `--busy` (each stage busy-waits its planned time): examples/e2e, `digits` (3 ms) and
  `squeezenet` (12 ms).
"""

import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ROOT = pathlib.Path(__file__).resolve().parents[4]
E2E = ROOT / "examples" / "e2e"
MNIST = ROOT / "crates" / "engine" / "testdata" / "mnist_resnet.onnx"
sys.path.insert(0, str(ROOT / "examples" / "multiprocess"))
from lalarand_serve import ServeProcess  # noqa: E402
from oip_client import concrete, metadata, module_of, random_inputs, timing  # noqa: E402,F401

MULTIPROCESS = ROOT / "examples" / "multiprocess"
# Minimum inter-arrival times of examples/e2e/taskset.toml and examples/multiprocess/taskset.toml, s.
PERIOD = {"digits": 0.003, "squeezenet": 0.012, "classifier": 0.010, "camera": 0.050}
E2E_ARGS = ["--platform", E2E / "platform.toml", "--tasks", E2E / "taskset.toml", "--allocation", E2E / "allocation.toml"]
MULTIPROCESS_ARGS = ["--platform", E2E / "platform.toml", "--tasks", MULTIPROCESS / "taskset.toml",
                     "--allocation", MULTIPROCESS / "allocation.toml"]


@pytest.fixture(scope="session")
def lalarand_bin():
    given = os.environ.get("LALARAND_BIN")
    if not given:
        pytest.fail("set LALARAND_BIN to a built lalarand (cargo build -p lalarand-cli): this suite tests its server")
    if not pathlib.Path(given).is_file():
        pytest.fail(f"LALARAND_BIN={given} does not exist")
    return given


@pytest.fixture(scope="session")
def squeezenet_onnx(lalarand_bin, tmp_path_factory):
    """The zoo SqueezeNet examples/e2e's profile was measured on (its sha256 is checked at start)."""
    path = tmp_path_factory.mktemp("zoo") / "squeezenet1_1.onnx"
    subprocess.run([lalarand_bin, "zoo", "squeezenet1_1", "--seed", "1", "--out", str(path)], check=True,
                   capture_output=True)
    return path


def start(lalarand_bin, *args, unix_socket=False):
    return ServeProcess(list(args), binary=lalarand_bin, unix_socket=unix_socket)


@pytest.fixture(scope="module")
def engine_server(lalarand_bin, squeezenet_onnx):
    """The models through ONNX Runtime, early requests waiting for their legal release."""
    server = start(lalarand_bin, *MULTIPROCESS_ARGS, "--models", f"classifier={MNIST},camera={squeezenet_onnx}",
                   "--early", "wait", unix_socket=True)
    yield server
    stop_cleanly(server)


@pytest.fixture(scope="module")
def busy_reject_server(lalarand_bin):
    """Busy-waiting stages, early requests rejected."""
    server = start(lalarand_bin, *E2E_ARGS, "--busy", "--early", "reject")
    yield server
    stop_cleanly(server)


@pytest.fixture(scope="module")
def busy_wait_server(lalarand_bin):
    """Busy-waiting stages, early requests waiting for their legal release."""
    server = start(lalarand_bin, *E2E_ARGS, "--busy", "--early", "wait")
    yield server
    stop_cleanly(server)


def stop_cleanly(server):
    """SIGTERM drains the server: it ends by itself with its report's verdict, 0 (no miss) or 1
    (a deadline missed on this shared machine), not 2 (a failure) or a signal's status."""
    status, _ = server.stop()
    assert status in (0, 1), f"the server ended with {status}:\n{server.stderr()[-4000:]}"


def client(server, protocol):
    """tritonclient's client of one protocol: http, grpc or grpc-unix."""
    if protocol == "http":
        return httpclient.InferenceServerClient(server.http)
    if protocol == "grpc":
        return grpcclient.InferenceServerClient(server.grpc)
    if protocol == "grpc-unix":
        return grpcclient.InferenceServerClient(server.unix)
    raise ValueError(protocol)


def inputs_for(c, model, seed=0):
    return random_inputs(c, model, seed)


parameters = timing


def wait_period(model):
    """Sleep one minimum inter-arrival time (and a margin), so the next request is not early."""
    time.sleep(PERIOD[model] * 1.5)


def concurrent_infers(server, protocol, model, count):
    """`count` requests of `model` sent at once from as many threads (one client each):
    [(parameters or None, error message or None)]."""
    results = [None] * count
    gate = threading.Barrier(count)

    def one(i):
        c = client(server, protocol)
        inputs = inputs_for(c, model)
        gate.wait()
        try:
            results[i] = (parameters(c.infer(model, inputs)), None)
        except InferenceServerException as e:
            results[i] = (None, e.message())
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
