"""The server from Python with busy-waiting stages (no models needed): each stage spins its
planned time and the job's output is its input, so every result can be checked against what
was submitted. Serving real models: test_models.py."""

import threading
import time

import numpy as np
import pytest

import lalarand


@pytest.fixture
def system():
    """Two tasks on a gpu and a cpu (pinned to the last core), every stage charged 0.3 ms of
    runtime overhead so the bounds hold on a loaded 2-core machine without SCHED_FIFO."""
    dnn = lalarand.Profile.chain("det", [("conv", 1.0, 3.0), ("head", 0.5, 1.5)])
    overheads = dict(dispatch_overhead_us=300.0, wakeup_overhead_us=300.0)
    import os

    core = sorted(os.sched_getaffinity(0))[-1]
    platform = lalarand.Platform([
        lalarand.Resource("gpu", "gpu", **overheads),
        lalarand.Resource("cpu", "cpu", cores=[core], **overheads),
    ])
    return lalarand.System(platform, [lalarand.Task("camera", dnn, 20.0), lalarand.Task("request", dnn, 10.0)])


@pytest.fixture
def allocation(system):
    result = system.allocate("lalarand")
    assert result.schedulable
    return result.allocation


def serve(system, allocation, **kw):
    return lalarand.serve(system, allocation, busy=True, realtime=False, **kw)


def test_infer_and_submit_return_the_jobs_own_outputs(system, allocation):
    with serve(system, allocation) as server:
        assert server.tasks == ["camera", "request"]
        for k in range(3):
            x = np.full((2, 3), k, dtype=np.float32)
            r = server.infer("request", x, timeout=10)
            assert r.task == "request" and r.job == k
            np.testing.assert_array_equal(r.outputs["output"], x)
            assert r.output.dtype == np.float32 and r.output.shape == (2, 3)
            assert r.release_ns <= r.start_ns <= r.finish_ns
            assert r.response_ns == r.finish_ns - r.release_ns
            assert r.bound_ns == system.analyze(allocation).task("request").bound_ns
            assert r.deadline_ns == r.release_ns + 10_000_000
        h = server.submit("request", np.ones((4,), dtype=np.float32))
        assert h.task == "request" and h.admission[0] in ("released", "delayed")
        r = h.result(timeout=10)
        assert h.done()
        np.testing.assert_array_equal(r.output, np.ones(4, dtype=np.float32))


def test_sporadic_submissions_respect_the_minimum_inter_arrival_time(system, allocation):
    with serve(system, allocation, max_backlog=8) as server:
        handles = [server.submit("request", np.zeros(1, dtype=np.float32)) for _ in range(4)]
        releases = [h.result(timeout=10).release_ns for h in handles]
        assert [h.admission[0] for h in handles[1:]] == ["delayed"] * 3
        assert all(b - a >= 10_000_000 for a, b in zip(releases, releases[1:]))
    with serve(system, allocation, early="reject") as server:
        server.infer("request", np.zeros(1, dtype=np.float32), timeout=10)
        h = server.submit("request", np.zeros(1, dtype=np.float32))
        assert h.admission[0] == "rejected"
        with pytest.raises(lalarand.RejectedError, match="before its earliest legal release"):
            h.result()


def test_inputs_are_copied_at_submit(system, allocation):
    """Writing into an array after submit does not change what the model sees, for a
    contiguous array and for a strided view: the server copied it at submit."""
    with serve(system, allocation) as server:
        x = np.zeros(8, dtype=np.float32)
        server.infer("request", x, timeout=10)  # the next submission waits ~10 ms for its release
        h = server.submit("request", x)
        assert h.admission[0] == "delayed"
        x[:] = 7.0
        np.testing.assert_array_equal(h.result(timeout=10).output, np.zeros(8, dtype=np.float32))
        y = np.arange(16, dtype=np.float32)[::2]
        h = server.submit("request", y)
        expected = y.copy()
        y[:] = -1.0
        np.testing.assert_array_equal(h.result(timeout=10).output, expected)


def test_bad_input_is_a_clear_error_and_the_server_goes_on(system, allocation):
    with serve(system, allocation, periodic={"camera": lalarand.SLOT}) as server:
        with pytest.raises(lalarand.InputError, match=r'task "request": bad input: got an array of dtype float64, expected a float32 numpy array'):
            server.submit("request", np.zeros(3))
        with pytest.raises(lalarand.InputError, match=r'task "request": bad input: got a list'):
            server.infer("request", [1.0, 2.0])
        with pytest.raises(lalarand.InputError, match=r'no task is called "nope" \(tasks: camera, request\)'):
            server.submit("nope", np.zeros(3, dtype=np.float32))
        with pytest.raises(lalarand.ServerError, match=r'task "camera": is periodic'):
            server.submit("camera", np.zeros(3, dtype=np.float32))
        h = server.submit("request", np.zeros(3, dtype=np.float32))
        assert h.result(timeout=10) is h.result()  # a Future's result, the same on every call
        with pytest.raises(ValueError, match="timeout"):
            server.infer("request", np.zeros(3, dtype=np.float32), timeout=-1.0)
        np.testing.assert_array_equal(server.infer("request", np.ones(2, dtype=np.float32), timeout=10).output, np.ones(2))
    with pytest.raises(lalarand.StoppedError, match='task "request": the server is stopped'):
        server.submit("request", np.zeros(3, dtype=np.float32))


def test_periodic_callable_source_and_a_raising_one(system, allocation):
    def camera(job):
        if job == 2:
            raise RuntimeError("camera unplugged")
        return np.full((1, 2), job, dtype=np.float32)

    with serve(system, allocation, periodic={"camera": camera}) as server:
        results = server.results("camera")
        seen = {}
        failed = None
        deadline = time.monotonic() + 20
        while len(seen) < 4 and time.monotonic() < deadline:
            try:
                r = results.next(timeout=5)
            except lalarand.JobError as e:
                failed = str(e)
                continue
            assert r is not None
            seen[r.job] = r.output
        # The other task is served meanwhile.
        server.infer("request", np.zeros(1, dtype=np.float32), timeout=10)
        stats = server.stats()
    for job, out in seen.items():
        np.testing.assert_array_equal(out, np.full((1, 2), job, dtype=np.float32))
    assert 2 not in seen
    assert failed is not None
    assert 'task "camera" job 2: the input source failed' in failed
    assert "Traceback (most recent call last)" in failed and 'raise RuntimeError("camera unplugged")' in failed
    camera_stats = next(t for t in stats["tasks"] if t["name"] == "camera")
    assert camera_stats["failed"] >= 1 and camera_stats["kind"] == "periodic"


def test_latest_value_slot(system, allocation):
    with serve(system, allocation, periodic={"camera": lalarand.SLOT}) as server:
        slot = server.slot("camera")
        slot.put(np.full(3, 5.0, dtype=np.float32))
        r = server.results("camera").next(timeout=10)
        np.testing.assert_array_equal(r.output, np.full(3, 5.0, dtype=np.float32))
        with pytest.raises(lalarand.InputError, match="dtype int64"):
            slot.put(np.zeros(3, dtype=np.int64))
        with pytest.raises(lalarand.ServerError, match="has no input slot"):
            server.slot("request")


def test_done_callbacks_run_off_the_caller_and_see_the_result(system, allocation):
    with serve(system, allocation) as server:
        got = []
        done = threading.Event()

        def on_done(handle):
            got.append((threading.current_thread() is threading.main_thread(), handle.result().output.copy()))
            done.set()

        h = server.submit("request", np.full(2, 3.0, dtype=np.float32))
        h.add_done_callback(on_done)
        assert done.wait(10)
        assert got[0][0] is False or h.done()
        np.testing.assert_array_equal(got[0][1], np.full(2, 3.0, dtype=np.float32))
        np.testing.assert_array_equal(h.result(timeout=1).output, got[0][1])
        # The first callback of a handle whose job already resolved runs at once, and may use it.
        h2 = server.submit("request", np.full(2, 4.0, dtype=np.float32))
        while not h2.done():
            time.sleep(0.001)
        first = []
        h2.add_done_callback(lambda handle: first.append((handle.done(), handle.result().output.copy())))
        assert first[0][0] is True
        np.testing.assert_array_equal(first[0][1], np.full(2, 4.0, dtype=np.float32))
        # A callback added after the job resolved runs at once.
        late = []
        h.add_done_callback(lambda handle: late.append(handle.job))
        assert late == [h.job]


def test_context_manager_stops_and_resolves_every_handle(system, allocation):
    with serve(system, allocation, max_backlog=8) as server:
        handles = [server.submit("request", np.zeros(1, dtype=np.float32)) for _ in range(5)]
    assert server.stopped
    assert all(h.done() for h in handles)
    outcomes = []
    for h in handles:
        try:
            h.result(timeout=0)
            outcomes.append("ok")
        except lalarand.StoppedError:
            outcomes.append("cancelled")
    assert outcomes.count("ok") >= 1
    report = server.stop()  # again: the same final statistics
    assert report["every_job_accounted"] is True and report["policy"] == "drain"
    assert [t["name"] for t in report["tasks"]] == ["camera", "request"] and report["stopped"] is True

    # Leaving by an exception cancels what has not run, and still resolves every handle.
    with pytest.raises(KeyError):
        with serve(system, allocation, max_backlog=8) as server:
            handles = [server.submit("request", np.zeros(1, dtype=np.float32)) for _ in range(5)]
            raise KeyError("application error")
    assert server.stop()["policy"] == "cancel"
    with pytest.raises(lalarand.StoppedError, match="cancelled by stop"):
        handles[-1].result(timeout=5)


def test_start_refuses_what_the_analysis_cannot_prove(system):
    big = lalarand.Profile.chain("big", [("a", 4.0, 8.0)])
    tight_system = lalarand.System(system.platform, [lalarand.Task("a", big, 10.0), lalarand.Task("b", big, 10.0)])
    tight = tight_system.allocation({"a": ["cpu-fp32@cpu"], "b": ["cpu-fp32@cpu"]})
    assert not tight_system.analyze(tight).schedulable
    with pytest.raises(lalarand.ServerError, match="cannot start the server"):
        serve(tight_system, tight)
    with serve(tight_system, tight, force=True) as server:
        assert server.infer("a", np.zeros(1, dtype=np.float32), timeout=10).bound_ns is None


def test_stats_are_live_and_name_every_task(system, allocation):
    with serve(system, allocation, trace_window_ms=1000.0) as server:
        for _ in range(3):
            server.infer("request", np.zeros(1, dtype=np.float32), timeout=10)
        stats = server.stats()
        assert [t["name"] for t in stats["tasks"]] == ["camera", "request"]
        request = stats["tasks"][1]
        assert request["completed"] == 3 and request["kind"] == "sporadic"
        # Every time's name says its unit (nanoseconds).
        assert request["bound_ns"] == system.analyze(system.allocate("lalarand").allocation).task("request").bound_ns
        assert request["deadline_ns"] == request["period_ns"] == 10_000_000
        assert 0 < request["response_min_ns"] <= request["response_mean_ns"] <= request["response_max_ns"]
        assert set(stats["dispatch_latency"]) == {"samples", "median_ns", "p99_ns", "max_ns"}
        assert stats["uptime_ns"] > 0 and set(stats["stalls"]) >= {"stage_ns", "wakeup_ns"}
        assert stats["stopped"] is False
        trace = server.trace()
        assert len(trace["traceEvents"]) > 0  # Chrome/Perfetto trace events of the stages run
    with serve(system, allocation) as server:
        assert server.trace() is None


def test_the_gil_is_released_while_waiting(system, allocation):
    """A Python thread keeps running while the main thread waits in infer."""
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.0005)

    with serve(system, allocation) as server:
        t = threading.Thread(target=spin)
        t.start()
        before = len(ticks)
        for _ in range(3):
            server.infer("request", np.zeros(1, dtype=np.float32), timeout=10)
        stop.set()
        t.join()
    assert len(ticks) - before > 5


def test_a_slow_source_delays_only_its_own_task(system, allocation):
    """A source that takes 5 periods per call: its releases find nothing new and are skipped
    (stale="skip", counted), while the sporadic task's jobs meet their deadlines."""

    def slow_camera(job):
        time.sleep(0.1)
        return np.zeros(2, dtype=np.float32)

    with serve(system, allocation, periodic={"camera": slow_camera}, stale="skip") as server:
        time.sleep(0.3)
        results = [server.infer("request", np.zeros(1, dtype=np.float32), timeout=10) for _ in range(5)]
        stats = server.stats()
    assert all(r.met for r in results), [r.response_ns for r in results]
    camera = next(t for t in stats["tasks"] if t["name"] == "camera")
    assert camera["skipped"] >= 5
