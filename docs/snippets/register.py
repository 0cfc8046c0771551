import json, os, numpy as np, tritonclient.http as httpclient
client = httpclient.InferenceServerClient("127.0.0.1:8000")  # lalarand serve ... --listen http://127.0.0.1:8000 --allow-load
model = {"model_path": os.path.abspath("crates/engine/testdata/mnist_resnet.onnx"), "profile_path": os.path.abspath("examples/e2e/mnist_resnet.json"), "period_ms": 50}
client.load_model("digits2", config=json.dumps(model))  # admitted only if every task stays proven
image = httpclient.InferInput("input", [1, 1, 28, 28], "FP32"); image.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32))
result = client.infer("digits2", [image])  # its first release, under the new proven schedule
print(result.as_numpy("logits").argmax(), result.get_response()["parameters"])  # response_ns, bound_ns, ...
