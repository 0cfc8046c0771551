"""What every client here does with PyPI's tritonclient, in one place: a client for a URL,
inputs shaped from the model's metadata, and the job's timing from a response's parameters.

`lalarand serve` answers every infer with the job's timing in the response's `parameters`:
`job`, `release_ns`, `start_ns`, `finish_ns`, `response_ns` (finish - release), `deadline_ns`,
`stalled_ns`, `bound_ns` (the analysis' bound; absent when none) and `deadline_met`.
"""

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "UINT8": np.uint8,
          "BOOL": np.bool_}


def connect(url):
    """`http://host:port`, `grpc://host:port` or `unix:///path.sock` (gRPC over a Unix socket)."""
    if url.startswith("http://"):
        return httpclient.InferenceServerClient(url[len("http://"):])
    if url.startswith("grpc://"):
        return grpcclient.InferenceServerClient(url[len("grpc://"):])
    if url.startswith("unix://"):
        return grpcclient.InferenceServerClient(url)
    raise ValueError(f"{url}: expected http://HOST:PORT, grpc://HOST:PORT or unix:///PATH")


def module_of(client):
    return grpcclient if isinstance(client, grpcclient.InferenceServerClient) else httpclient


def metadata(client, model):
    """Model metadata as a dict, from either client (gRPC's is a protobuf message)."""
    meta = client.get_model_metadata(model)
    if isinstance(meta, dict):
        return meta
    return {"name": meta.name, "platform": meta.platform, "versions": list(meta.versions),
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.outputs]}


def concrete(shape):
    """A declared shape with variable dimensions (-1) set to 1."""
    return [1 if d < 0 else d for d in shape]


def random_inputs(client, model, seed=0):
    """One InferInput per declared input of `model`, seeded values of its shape and type."""
    module = module_of(client)
    rng = np.random.default_rng(seed)
    inputs = []
    for spec in metadata(client, model)["inputs"]:
        value = rng.random(concrete(spec["shape"])).astype(DTYPES[spec["datatype"]])
        tensor = module.InferInput(spec["name"], list(value.shape), spec["datatype"])
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    return inputs


def timing(result):
    """The response's parameters as a dict of Python values, from either client."""
    response = result.get_response()
    if isinstance(response, dict):
        return response.get("parameters", {})
    return {key: getattr(p, p.WhichOneof("parameter_choice")) for key, p in response.parameters.items()}


def over_bound(t):
    """'' when the job's response is within its bound, else by how much it is over and how much
    of it the machine stalled the server (docs/runtime.md, "Stalls")."""
    bound = t.get("bound_ns")
    if bound is None or t["response_ns"] <= bound:
        return ""
    return f"   over its bound by {(t['response_ns'] - bound) / 1e6:.3f} ms, stalled {t['stalled_ns'] / 1e6:.3f} ms"
