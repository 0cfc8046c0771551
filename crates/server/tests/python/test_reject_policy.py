"""`--early reject`: a request before the task's minimum inter-arrival time is refused with an
error that says so (one server per module: two servers would share the pinned cores)."""

import pytest

from conftest import client, concurrent_infers, inputs_for, parameters, wait_period


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_reject_policy_refuses_a_request_before_the_minimum_inter_arrival_time(busy_reject_server, protocol):
    """Four requests of `squeezenet` (12 ms) at once: the first admitted runs, the others
    come before its release + 12 ms and are refused with an error that says so."""
    wait_period("squeezenet")
    results = concurrent_infers(busy_reject_server, protocol, "squeezenet", 4)
    answered = [p for p, _ in results if p is not None]
    refused = [e for _, e in results if e is not None]
    assert len(answered) >= 1 and len(refused) >= 1, results
    assert all("squeezenet" in e and "inter-arrival" in e for e in refused), refused
    # The server goes on: after a period the task takes a request again.
    wait_period("squeezenet")
    c = client(busy_reject_server, protocol)
    assert parameters(c.infer("squeezenet", inputs_for(c, "squeezenet")))["response_ns"] > 0
    c.close()
