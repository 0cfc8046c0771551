#!/usr/bin/env python3
"""Load test: one `lalarand serve`, five client processes, every request accounted for.

The server serves examples/multiprocess (the classifier, 10 ms minimum inter-arrival time and
the higher priority, and the camera, 50 ms), stages busy-waiting their planned times
(`--busy`), early requests rejected (`--early reject`). Clients, each its own OS process
(`load.py --client ...`), from the same start for `--seconds`:

* `classifier`: the high-priority task over gRPC, one request every 1.2 minimum inter-arrival
  times; keeps every response's timing.
* four `flood` clients: the low-priority camera as fast as each can send, over HTTP (two),
  gRPC and gRPC over a Unix socket; nearly all of it comes before the camera's next legal
  release and is refused.

Checks (exit status 1 when one fails; `--json FILE` writes the details):

1. Every request was answered or refused with a reason (an error message from the server);
   none failed otherwise (timeout, connection reset) and none is missing: each client's
   requests = answered + refused, and the server's own success counts (the statistics
   endpoint, before and after) grew by the answered requests.
2. The classifier's responses stayed within its bound while the camera was flooded: every
   `response_ns <= bound_ns`, or the excess is covered by the time the machine stalled the
   server (`stalled_ns`: docs/runtime.md, "Stalls"); both counts are printed.
3. The server's resident memory (VmRSS, /proc/PID/status, sampled every 0.5 s) stays flat:
   its maximum over the second half of the run is within 5 % (+1 MiB) of its median over the
   first quarter after warm-up (from 10 % to 35 % of the run).

    python3 examples/multiprocess/load.py --seconds 60      # the documented 60 s run
    python3 examples/multiprocess/load.py --seconds 10      # the test-sized run (pytest)

Needs `pip install "tritonclient[http,grpc]" numpy` and a built `lalarand` ($LALARAND_BIN,
PATH or target/).
"""

import argparse
import json
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from lalarand_serve import ROOT, ServeProcess  # noqa: E402

SERVE_ARGS = ["--platform", ROOT / "examples" / "e2e" / "platform.toml", "--tasks", HERE / "taskset.toml",
              "--allocation", HERE / "allocation.toml", "--busy", "--early", "reject"]
CLASSIFIER_PERIOD = 0.010
FLOODERS = ["http", "http", "grpc", "unix"]


def reason_of(message):
    """An error message with its numbers blanked, to count refusals by reason."""
    return re.sub(r"\d+(\.\d+)?", "N", message)[:200]


def run_client(role, url, task, start_at, seconds, out):
    """One client process: requests until `seconds` after `start_at`, results to `out` (JSON)."""
    from tritonclient.utils import InferenceServerException

    from oip_client import connect, random_inputs, timing

    client = connect(url)
    inputs = random_inputs(client, task)
    sent = answered = 0
    refused, failed, responses = {}, {}, []
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + seconds
    next_send = time.monotonic()
    while time.time() < end:
        if role == "classifier":
            while time.monotonic() < next_send:
                time.sleep(0.0005)
            next_send = time.monotonic() + 1.2 * CLASSIFIER_PERIOD
        sent += 1
        try:
            t = timing(client.infer(task, inputs, client_timeout=30) if url.startswith(("grpc", "unix"))
                       else client.infer(task, inputs))
            answered += 1
            if role == "classifier":
                responses.append({k: t.get(k) for k in ("job", "response_ns", "bound_ns", "stalled_ns", "deadline_met")})
        except InferenceServerException as e:
            # A refusal carries the server's reason; a client-side failure (timeout, reset) has
            # no status from the server and counts as lost.
            status, message = e.status(), e.message() or ""
            server_said = status is not None and "DEADLINE_EXCEEDED" not in str(status) and "UNAVAILABLE" not in str(status)
            bucket = refused if server_said and message else failed
            key = reason_of(message) if message else repr(e)
            bucket[key] = bucket.get(key, 0) + 1
        except Exception as e:  # connection reset, broken pipe: lost requests
            failed[repr(e)[:200]] = failed.get(repr(e)[:200], 0) + 1
    client.close()
    pathlib.Path(out).write_text(json.dumps({"role": role, "url": url, "task": task, "sent": sent,
                                             "answered": answered, "refused": refused, "failed": failed,
                                             "responses": responses}))


def success_counts(url):
    """task -> successful inferences, from the protocol's statistics endpoint."""
    from oip_client import connect

    client = connect(url)
    stats = client.get_inference_statistics()
    client.close()
    return {m["name"]: int(m["inference_stats"]["success"]["count"]) for m in stats["model_stats"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients send (default 60)")
    parser.add_argument("--lalarand-bin", help="lalarand binary (default: $LALARAND_BIN, PATH, target/)")
    parser.add_argument("--json", type=pathlib.Path, help="write the clients' results and the checks here")
    parser.add_argument("--client", choices=["classifier", "flood"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return run_client(args.client, args.url, args.task, args.start_at, args.seconds, args.out)

    server = ServeProcess(SERVE_ARGS, binary=args.lalarand_bin, unix_socket=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="lalarand-load-"))
    try:
        http = f"http://{server.http}"
        urls = {"http": http, "grpc": f"grpc://{server.grpc}", "unix": server.unix}
        before = success_counts(http)
        start_at = time.time() + 3.0  # every client connected and ready by then
        plan = [("classifier", urls["grpc"], "classifier")] + [("flood", urls[p], "camera") for p in FLOODERS]
        clients = []
        for i, (role, url, task) in enumerate(plan):
            out = scratch / f"client{i}.json"
            clients.append((out, subprocess.Popen(
                [sys.executable, __file__, "--client", role, "--url", url, "--task", task, "--start-at", str(start_at),
                 "--seconds", str(args.seconds), "--out", str(out)])))
        rss = []
        while any(p.poll() is None for _, p in clients):
            if time.time() >= start_at:
                rss.append((round(time.time() - start_at, 2), server.rss_kib()))
            time.sleep(0.5)
        statuses = [p.returncode for _, p in clients]
        results = [json.loads(out.read_text()) for out, _ in clients if out.is_file()]
        after = success_counts(http)
    finally:
        status, _ = server.stop()
    summary = check(args.seconds, results, statuses, before, after, rss, status)
    report(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


def check(seconds, results, statuses, before, after, rss, server_status):
    checks = {}
    checks["every client process ran and reported"] = all(s == 0 for s in statuses) and len(results) == 1 + len(FLOODERS)
    accounted = all(r["sent"] == r["answered"] + sum(r["refused"].values()) for r in results)
    lost = sum(sum(r["failed"].values()) for r in results)
    checks["every request answered or refused with a reason, none lost"] = accounted and lost == 0
    grew = {task: after.get(task, 0) - before.get(task, 0) for task in after}
    answered = {}
    for r in results:
        answered[r["task"]] = answered.get(r["task"], 0) + r["answered"]
    checks["the server's success counts grew by the answered requests"] = all(
        grew.get(task, 0) == n for task, n in answered.items())
    responses = [x for r in results if r["role"] == "classifier" for x in r["responses"]]
    timed = [x for x in responses if None not in (x["response_ns"], x["bound_ns"], x["stalled_ns"])]
    within = [x for x in timed if x["response_ns"] <= x["bound_ns"]]
    covered = [x for x in timed if x["response_ns"] > x["bound_ns"] and x["response_ns"] - x["stalled_ns"] <= x["bound_ns"]]
    checks["the classifier's responses within its bound (or covered by the machine's stalls)"] = \
        bool(responses) and len(within) + len(covered) == len(responses)
    samples = [kib for t, kib in rss]
    early = [kib for t, kib in rss if 0.10 * seconds <= t <= 0.35 * seconds]
    late = [kib for t, kib in rss if t >= 0.5 * seconds]
    baseline = statistics.median(early) if early else None
    checks["server memory flat"] = bool(early and late) and max(late) <= baseline * 1.05 + 1024
    checks["the server stopped cleanly"] = server_status == 0 or server_status == 1
    refused_reasons = {}
    for r in results:
        for reason, n in r["refused"].items():
            refused_reasons[reason] = refused_reasons.get(reason, 0) + n
    response_ms = sorted(x["response_ns"] / 1e6 for x in timed)
    return {
        "ok": all(checks.values()), "checks": checks, "seconds": seconds,
        "clients": [{k: r[k] for k in ("role", "url", "task", "sent", "answered", "refused", "failed")} for r in results],
        "server_success_growth": grew, "refused_by_reason": refused_reasons,
        "classifier": {
            "responses": len(responses), "within_bound": len(within), "covered_by_stalls": len(covered),
            "bound_ms": timed[0]["bound_ns"] / 1e6 if timed else None,
            "median_ms": statistics.median(response_ms) if response_ms else None,
            "p99_ms": response_ms[min(len(response_ms) - 1, int(0.99 * len(response_ms)))] if response_ms else None,
            "max_ms": response_ms[-1] if response_ms else None,
        },
        "rss_kib": {"samples": rss, "baseline": baseline, "max_second_half": max(late) if late else None,
                    "min": min(samples) if samples else None},
        "server_exit_status": server_status,
    }


def report(s):
    print(f"{'client':<11} {'url':<44} {'task':<11} {'sent':>8} {'answered':>9} {'refused':>8} {'lost':>5}")
    for c in s["clients"]:
        print(f"{c['role']:<11} {c['url'][:44]:<44} {c['task']:<11} {c['sent']:>8} {c['answered']:>9} "
              f"{sum(c['refused'].values()):>8} {sum(c['failed'].values()):>5}")
    for reason, n in sorted(s["refused_by_reason"].items(), key=lambda kv: -kv[1]):
        print(f"  refused {n} x: {reason}")
    c = s["classifier"]
    if c["median_ms"] is not None:
        print(f"classifier: {c['responses']} responses, median {c['median_ms']:.3f} ms, p99 {c['p99_ms']:.3f} ms, "
              f"max {c['max_ms']:.3f} ms, bound {c['bound_ms']:.3f} ms; {c['within_bound']} within it, "
              f"{c['covered_by_stalls']} over it by no more than the machine's stalls")
    m = s["rss_kib"]
    if m["baseline"]:
        print(f"server RSS: {m['baseline']} KiB early (median), {m['max_second_half']} KiB max in the second half")
    for name, ok in s["checks"].items():
        print(f"{'ok ' if ok else 'FAIL'} {name}")


if __name__ == "__main__":
    sys.exit(main())
