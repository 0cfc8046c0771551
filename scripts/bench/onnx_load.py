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


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="host:port of the server's HTTP endpoint")
    p.add_argument("--model", required=True, help="the ONNX model (a path on the server's machine)")
    p.add_argument("--profile", required=True, help="its profile JSON (a path on the server's machine)")
    p.add_argument("--period-ms", type=float, default=50.0)
    p.add_argument("--name", default="loaded")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--json", help="write every run's figures here")
    args = p.parse_args()
    parameters = {"model_path": args.model, "profile_path": args.profile, "period_ms": args.period_ms}
    rows = []
    for run in range(args.runs):
        started = time.monotonic_ns()
        report = post(args.url, f"/v2/repository/models/{args.name}/load", {"parameters": parameters})
        loaded = time.monotonic_ns()
        meta = get(args.url, f"/v2/models/{args.name}")
        spec = meta["inputs"][0]
        shape = [1 if d < 0 else d for d in spec["shape"]]
        count = 1
        for d in shape:
            count *= d
        body = {"inputs": [{"name": spec["name"], "shape": shape, "datatype": "FP32", "data": [0.0] * count}]}
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
