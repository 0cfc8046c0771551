"""Time from a load request to the loaded task's first release, for an ONNX model loaded into a
running `lalarand serve --listen ... --allow-load` (docs/evaluation.md, section 14).

Repeats: load the model (HTTP `POST /v2/repository/models/NAME/load`), send its first infer
request as soon as the load answers, unload it. Per repetition, on the server's clock (ns since
its time 0): the change's `requested_ns`, decision, the new executor's build and the drain,
the new mode's start, its first possible release (`to_first_release_ns`), and the first job's actual `release_ns` from the infer
response, so request -> first release = release_ns - requested_ns (the load's HTTP answer and
the client's infer request are inside it). Standard library only.

    python3 scripts/bench/onnx_load.py --url 127.0.0.1:8000 --model M.onnx --profile P.json --period-ms 50
"""

import argparse
import json
import statistics
import threading
import time
import urllib.request


def post(url, path, body):
    request = urllib.request.Request(f"http://{url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def get(url, path):
    with urllib.request.urlopen(f"http://{url}{path}", timeout=60) as r:
        return json.loads(r.read())


def get_index(url):
    return [m["name"] for m in post(url, "/v2/repository/index", {})]


def zeros_request(url, model):
    """An infer request of zeros of `model`'s first input."""
    spec = get(url, f"/v2/models/{model}")["inputs"][0]
    shape = [1 if d < 0 else d for d in spec["shape"]]
    count = 1
    for d in shape:
        count *= d
    return {"inputs": [{"name": spec["name"], "shape": shape, "datatype": "FP32", "data": [0.0] * count}]}


def traffic(url, model, stop, counts):
    """Requests of `model` back to back (each waits for its legal release) until `stop`."""
    body = zeros_request(url, model)
    while not stop.is_set():
        t = post(url, f"/v2/models/{model}/infer", body)["parameters"]
        counts[model] = counts.get(model, 0) + 1
        if not t["deadline_met"]:
            counts[f"{model} misses"] = counts.get(f"{model} misses", 0) + 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="host:port of the server's HTTP endpoint")
    p.add_argument("--model", required=True, help="the ONNX model (a path on the server's machine)")
    p.add_argument("--profile", required=True, help="its profile JSON (a path on the server's machine)")
    p.add_argument("--period-ms", type=float, default=50.0)
    p.add_argument("--name", default="loaded")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--json", help="write every run's figures here")
    p.add_argument("--traffic", action="store_true",
                   help="keep every running model busy (one client each, requests back to back) during the loads")
    args = p.parse_args()
    stop, counts, clients = threading.Event(), {}, []
    if args.traffic:
        for m in get_index(args.url):
            clients.append(threading.Thread(target=traffic, args=(args.url, m, stop, counts), daemon=True))
            clients[-1].start()
        time.sleep(1.0)
    parameters = {"model_path": args.model, "profile_path": args.profile, "period_ms": args.period_ms}
    rows = []
    for run in range(args.runs):
        started = time.monotonic_ns()
        report = post(args.url, f"/v2/repository/models/{args.name}/load", {"parameters": parameters})
        loaded = time.monotonic_ns()
        body = zeros_request(args.url, args.name)
        result = post(args.url, f"/v2/models/{args.name}/infer", body)
        answered = time.monotonic_ns()
        t = result["parameters"]
        rows.append({
            "decision_ns": report["decision_ns"],
            # The new mode's executor (the new pipeline, warmed up), then the old mode's drain.
            "build_and_drain_ns": report["switched_ns"] - report["requested_ns"] - report["decision_ns"],
            # The new mode's server starting: threads, and the runtime's warm-up of every stage.
            "start_ns": report["resumed_ns"] - report["switched_ns"],
            "to_first_possible_release_ns": report["to_first_release_ns"],
            "to_first_release_ns": t["release_ns"] - report["requested_ns"],
            "first_response_ns": t["response_ns"],
            "load_call_ns": loaded - started,
            "to_first_result_client_ns": answered - started,
            "moved_layers": report["moved_layers"],
        })
        post(args.url, f"/v2/repository/models/{args.name}/unload", {})
        time.sleep(0.2)
    print(f"{args.runs} loads of {args.model} ({args.period_ms} ms), ms: median [min, max]")
    for key in rows[0]:
        if key == "moved_layers":
            continue
        values = [r[key] / 1e6 for r in rows]
        print(f"  {key:32s} {statistics.median(values):9.3f} [{min(values):.3f}, {max(values):.3f}]")
    print(f"  moved layers: {sorted({r['moved_layers'] for r in rows})}")
    if args.traffic:
        stop.set()
        for c in clients:
            c.join(timeout=10)
        print(f"  running models' jobs during the runs (completed, misses): {counts}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
