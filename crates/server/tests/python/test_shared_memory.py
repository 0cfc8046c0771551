"""The system shared-memory extension with tritonclient's own utilities: a local client puts
the input in a POSIX shared-memory region it registered, the server writes the output into one,
no tensor crosses the socket."""

import itertools
import os

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from conftest import MNIST, client, module_of, parameters

IN_BYTES, OUT_BYTES = 1 * 1 * 28 * 28 * 4, 10 * 4


def region_names(c):
    status = c.get_system_shared_memory_status()
    if isinstance(status, list):  # http: [{"name", "key", "offset", "byte_size"}]
        return {r["name"] for r in status}
    return set(status.regions.keys())  # grpc: SystemSharedMemoryStatusResponse


def tensor_data_in(result, name):
    """Whether the response carries the output's values itself."""
    response = result.get_response()
    if isinstance(response, dict):  # http: JSON `data` or a binary_data_size > 0
        (out,) = [o for o in response["outputs"] if o["name"] == name]
        return "data" in out or out.get("parameters", {}).get("binary_data_size", 0) > 0
    return any(len(raw) > 0 for raw in response.raw_output_contents)


REGIONS = itertools.count()


@pytest.fixture
def region():
    """A fresh POSIX region for one test, destroyed afterwards: (name, key, handle)."""
    made = []

    def make(byte_size):
        tag = f"{os.getpid()}_{next(REGIONS)}"
        name, key = f"test_region_{tag}", f"/lalarand_test_{tag}"
        made.append(shm.create_shared_memory_region(name, key, byte_size))
        return name, key, made[-1]

    yield make
    for handle in made:
        shm.destroy_shared_memory_region(handle)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_input_and_output_in_one_registered_region(engine_server, region, protocol):
    """One region, the image at offset 0 and the logits after it; the logits are ONNX
    Runtime's, the response has no tensor data and still its timing."""
    c = client(engine_server, protocol)
    module = module_of(c)
    name, key, handle = region(IN_BYTES + OUT_BYTES)
    image = np.random.default_rng(7).random((1, 1, 28, 28), dtype=np.float32)
    expected = ort.InferenceSession(str(MNIST), providers=["CPUExecutionProvider"]).run(None, {"input": image})[0]
    shm.set_shared_memory_region(handle, [image])
    c.register_system_shared_memory(name, key, IN_BYTES + OUT_BYTES)
    assert name in region_names(c)
    x = module.InferInput("input", [1, 1, 28, 28], "FP32")
    x.set_shared_memory(name, IN_BYTES)
    out = module.InferRequestedOutput("logits")
    out.set_shared_memory(name, OUT_BYTES, offset=IN_BYTES)
    result = c.infer("classifier", [x], outputs=[out])
    assert not tensor_data_in(result, "logits"), "the output was to go into the region, not the response"
    logits = shm.get_contents_as_numpy(handle, np.float32, [1, 10], offset=IN_BYTES)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    assert parameters(result)["response_ns"] > 0
    c.unregister_system_shared_memory(name)
    assert name not in region_names(c)
    c.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_input_in_shared_memory_output_in_the_response(engine_server, region, protocol):
    c = client(engine_server, protocol)
    module = module_of(c)
    name, key, handle = region(IN_BYTES)
    image = np.random.default_rng(8).random((1, 1, 28, 28), dtype=np.float32)
    shm.set_shared_memory_region(handle, [image])
    c.register_system_shared_memory(name, key, IN_BYTES)
    x = module.InferInput("input", [1, 1, 28, 28], "FP32")
    x.set_shared_memory(name, IN_BYTES)
    from_shm = c.infer("classifier", [x]).as_numpy("logits")
    y = module.InferInput("input", [1, 1, 28, 28], "FP32")
    y.set_data_from_numpy(image)
    np.testing.assert_array_equal(from_shm, c.infer("classifier", [y]).as_numpy("logits"))
    c.unregister_system_shared_memory(name)
    c.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_regions_out_of_bounds_unknown_or_missing_are_errors(engine_server, region, protocol):
    """Each is refused with an error naming the region, and the task goes on serving."""
    c = client(engine_server, protocol)
    module = module_of(c)
    name, key, _ = region(IN_BYTES)
    c.register_system_shared_memory(name, key, IN_BYTES)

    def infer_from(region_name, byte_size, offset=0):
        x = module.InferInput("input", [1, 1, 28, 28], "FP32")
        x.set_shared_memory(region_name, byte_size, offset=offset)
        return c.infer("classifier", [x])

    # The input reaches past the region's end.
    with pytest.raises(InferenceServerException, match=name):
        infer_from(name, IN_BYTES, offset=64)
    # The output reaches past it.
    x = module.InferInput("input", [1, 1, 28, 28], "FP32")
    x.set_shared_memory(name, IN_BYTES)
    out = module.InferRequestedOutput("logits")
    out.set_shared_memory(name, OUT_BYTES, offset=IN_BYTES - 8)
    with pytest.raises(InferenceServerException, match=name):
        c.infer("classifier", [x], outputs=[out])
    # A byte size that is not the tensor's.
    with pytest.raises(InferenceServerException):
        infer_from(name, IN_BYTES - 4)
    # A region never registered.
    with pytest.raises(InferenceServerException, match="no_such_region"):
        infer_from("no_such_region", IN_BYTES)
    # Registering a key no process created, or more bytes than the object has.
    with pytest.raises(InferenceServerException):
        c.register_system_shared_memory("ghost", f"/lalarand_no_such_key_{os.getpid()}", IN_BYTES)
    with pytest.raises(InferenceServerException):
        c.register_system_shared_memory("too_big", key, IN_BYTES * 1000)
    # The region and the task are fine.
    ok = infer_from(name, IN_BYTES)
    assert ok.as_numpy("logits").shape == (1, 10)
    c.unregister_system_shared_memory(name)
    with pytest.raises(InferenceServerException, match=name):
        infer_from(name, IN_BYTES)
    c.close()
