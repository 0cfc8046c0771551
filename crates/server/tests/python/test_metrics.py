"""Prometheus metrics at /metrics, read with prometheus_client's own parsers, and the protocol's
statistics endpoint, both against the requests this module sent."""

import urllib.request

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from conftest import client, inputs_for, wait_period

ANSWERED = 6  # digits requests this module sends, each answered


@pytest.fixture(scope="module")
def served(busy_reject_server):
    """ANSWERED digits jobs, and at least one squeezenet request rejected as too early."""
    c = httpclient.InferenceServerClient(busy_reject_server.http)
    for _ in range(ANSWERED):
        wait_period("digits")
        c.infer("digits", inputs_for(c, "digits"))
    wait_period("squeezenet")
    rejected = 0
    for _ in range(3):
        try:
            c.infer("squeezenet", inputs_for(c, "squeezenet"))
        except InferenceServerException:
            rejected += 1
    assert rejected >= 1
    c.close()
    return busy_reject_server


def scrape(server):
    """The families, read with prometheus_client's OpenMetrics parser, the format the response
    declares."""
    with urllib.request.urlopen(f"http://{server.http}/metrics", timeout=30) as response:
        assert response.status == 200
        content_type, text = response.headers["Content-Type"], response.read().decode()
    assert content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8", content_type
    return list(text_string_to_metric_families(text))


def families(scraped, *words, kind=None):
    """Families whose name has every word (and is of that type, when given)."""
    return [f for f in scraped if all(w in f.name for w in words) and (kind is None or f.type == kind)]


def task_value(family, task, suffix=""):
    values = [s.value for s in family.samples
              if s.labels.get("task") == task and s.name in (family.name + suffix, family.name)]
    assert len(values) == 1, (family.name, task, family.samples)
    return values[0]


def one(scraped, *words, kind, without=None):
    found = [f for f in families(scraped, *words, kind=kind) if without is None or without not in f.name]
    assert len(found) == 1, f"one {kind} named with {words}: {sorted((f.name, f.type) for f in scraped)}"
    return found[0]


def test_per_task_jobs_misses_rejections_responses_and_bound(served):
    scraped = scrape(served)
    assert task_value(one(scraped, "job", kind="counter", without="miss"), "digits", "_total") >= ANSWERED
    assert task_value(one(scraped, "miss", kind="counter"), "digits", "_total") >= 0
    assert task_value(one(scraped, "reject", kind="counter"), "squeezenet", "_total") >= 1
    response = one(scraped, "response", kind="histogram")
    assert task_value(response, "digits", "_count") >= ANSWERED
    buckets = [s for s in response.samples if s.name.endswith("_bucket") and s.labels.get("task") == "digits"]
    assert buckets and buckets[-1].labels["le"] == "+Inf"
    assert [s.value for s in buckets] == sorted(s.value for s in buckets), "cumulative buckets"
    assert task_value(one(scraped, "bound", kind="gauge"), "digits") > 0


def test_per_resource_busy_time_and_stalls(served):
    scraped = scrape(served)
    names = sorted(f.name for f in scraped)
    busy = families(scraped, "busy")
    assert busy, names
    resources = {s.labels.get("resource") for f in busy for s in f.samples}
    assert {"cpu0", "cpu1"} <= resources, busy
    assert sum(s.value for f in busy for s in f.samples if s.labels.get("resource") == "cpu0") > 0
    assert families(scraped, "stall"), names


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_statistics_endpoint_counts_the_jobs(served, protocol):
    c = client(served, protocol)
    stats = c.get_inference_statistics("digits")
    if isinstance(stats, dict):
        (model,) = stats["model_stats"]
        name, success = model["name"], model["inference_stats"]["success"]["count"]
    else:
        (model,) = stats.model_stats
        name, success = model.name, model.inference_stats.success.count
    assert name == "digits" and success >= ANSWERED
    every = c.get_inference_statistics()
    count = len(every["model_stats"]) if isinstance(every, dict) else len(every.model_stats)
    assert count == 2
    c.close()


def test_statistics_of_an_unknown_model_is_an_error(served):
    c = grpcclient.InferenceServerClient(served.grpc)
    with pytest.raises(InferenceServerException, match="no_such_task"):
        c.get_inference_statistics("no_such_task")
    c.close()
