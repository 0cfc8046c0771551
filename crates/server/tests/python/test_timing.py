"""An infer request is a release of a sporadic task: the response carries the job's timing, and
the task's period is enforced as its minimum inter-arrival time (`--early wait` here; `reject`:
test_reject_policy.py)."""

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from conftest import PERIOD, client, concurrent_infers, inputs_for, parameters, wait_period

TIMING = ["job", "release_ns", "start_ns", "finish_ns", "response_ns", "deadline_ns", "stalled_ns", "deadline_met"]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_every_response_carries_its_jobs_timing(busy_wait_server, protocol):
    c = client(busy_wait_server, protocol)
    jobs = []
    for _ in range(5):
        p = parameters(c.infer("digits", inputs_for(c, "digits")))
        missing = [k for k in TIMING + ["bound_ns"] if k not in p]
        assert not missing, f"response parameters lack {missing}: {p}"
        assert p["release_ns"] <= p["start_ns"] <= p["finish_ns"]
        assert p["response_ns"] == p["finish_ns"] - p["release_ns"]
        # The task's deadline is its period (3 ms): constrained deadlines, docs/analysis.md.
        assert p["deadline_ns"] == p["release_ns"] + int(PERIOD["digits"] * 1e9)
        assert p["deadline_met"] == (p["finish_ns"] <= p["deadline_ns"])
        assert 0 < p["bound_ns"] <= int(PERIOD["digits"] * 1e9), "the e2e allocation is proven"
        assert p["stalled_ns"] >= 0
        jobs.append(p["job"])
        wait_period("digits")
    assert jobs == sorted(jobs) and len(set(jobs)) == len(jobs)
    c.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_wait_policy_delays_early_requests_to_their_legal_release(busy_wait_server, protocol):
    """Three requests at once all answered, their releases at least 12 ms apart."""
    wait_period("squeezenet")
    results = concurrent_infers(busy_wait_server, protocol, "squeezenet", 3)
    assert all(e is None for _, e in results), results
    releases = sorted(p["release_ns"] for p, _ in results)
    gaps = [b - a for a, b in zip(releases, releases[1:])]
    assert all(g >= int(PERIOD["squeezenet"] * 1e9) for g in gaps), gaps


def test_the_job_counter_is_per_task_and_shared_by_protocols(busy_wait_server):
    """HTTP and gRPC requests of one task are releases of the same task: one job sequence."""
    h = httpclient.InferenceServerClient(busy_wait_server.http)
    g = grpcclient.InferenceServerClient(busy_wait_server.grpc)
    wait_period("digits")
    first = parameters(h.infer("digits", inputs_for(h, "digits")))["job"]
    wait_period("digits")
    second = parameters(g.infer("digits", inputs_for(g, "digits")))["job"]
    assert second > first
    h.close()
    g.close()
