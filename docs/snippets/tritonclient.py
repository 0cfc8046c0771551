import numpy as np, tritonclient.http as httpclient
client = httpclient.InferenceServerClient("127.0.0.1:8000")  # lalarand serve ... --listen http://127.0.0.1:8000
image = httpclient.InferInput("input", [1, 1, 28, 28], "FP32"); image.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32))
result = client.infer("classifier", [image])  # one release of the sporadic task `classifier`
print(result.as_numpy("logits").argmax(), result.get_response()["parameters"])  # response_ns, bound_ns, deadline_met, ...
