"""The real-time fallback is not silent: where the OS refuses SCHED_FIFO, serve() warns with a
RuntimeWarning, server.realtime says False, and realtime="required" refuses to start."""

import os
import subprocess
import sys
import textwrap
import warnings

import pytest

import lalarand


def _system():
    dnn = lalarand.Profile.chain("d", [("a", 1.0, 1.0)])
    system = lalarand.System(lalarand.Platform([lalarand.Resource("cpu", "cpu", cores=[sorted(os.sched_getaffinity(0))[-1]])]), [lalarand.Task("t", dnn, 50.0)])
    return system, system.allocation({"t": ["cpu-fp32@cpu"]})


def _fifo_allowed():
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


def test_realtime_says_what_the_server_got_and_warns_when_refused():
    system, allocation = _system()
    allowed = _fifo_allowed()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with lalarand.serve(system, allocation, busy=True) as server:
            assert server.realtime is allowed
    fallback = [w for w in caught if issubclass(w.category, RuntimeWarning) and "SCHED_FIFO" in str(w.message)]
    assert len(fallback) == (0 if allowed else 1), [str(w.message) for w in caught]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with lalarand.serve(system, allocation, busy=True, realtime=False) as server:
            assert server.realtime is False


# Run where SCHED_FIFO is refused: RLIMIT_RTPRIO 0, and (when the tests run as root, which
# CAP_SYS_NICE lets through) CAP_SYS_NICE dropped from the bounding set before exec.
REFUSED = textwrap.dedent("""
    import os, warnings, lalarand
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        print("premise failed: SCHED_FIFO granted")
    except PermissionError:
        print("premise: SCHED_FIFO refused")
    dnn = lalarand.Profile.chain("d", [("a", 1.0, 1.0)])
    system = lalarand.System(lalarand.Platform([lalarand.Resource("cpu", "cpu", cores=[sorted(os.sched_getaffinity(0))[-1]])]), [lalarand.Task("t", dnn, 50.0)])
    allocation = system.allocation({"t": ["cpu-fp32@cpu"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server = lalarand.serve(system, allocation, busy=True)
    print("realtime", server.realtime)
    print("warned", [str(w.message) for w in caught if w.category is RuntimeWarning])
    server.stop()
    try:
        lalarand.serve(system, allocation, busy=True, realtime="required")
        print("required started")
    except lalarand.ServerError as e:
        print("required refused", e)
""")


def _drop_realtime_rights():
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    if os.geteuid() == 0:
        pr_capbset_drop, cap_sys_nice = 24, 23
        if ctypes.CDLL(None, use_errno=True).prctl(pr_capbset_drop, cap_sys_nice, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_SYS_NICE)")


def test_refused_sched_fifo_warns_and_required_refuses():
    child = subprocess.run([sys.executable, "-c", REFUSED], capture_output=True, text=True, timeout=60,
                           preexec_fn=_drop_realtime_rights)
    assert child.returncode == 0, child.stderr
    premise, *lines = child.stdout.splitlines()
    assert premise == "premise: SCHED_FIFO refused", premise
    assert lines[0] == "realtime False", child.stdout + child.stderr
    assert lines[1].startswith("warned ['lalarand.serve: the OS refused SCHED_FIFO"), lines[1]
    assert "fix: run as root or with CAP_SYS_NICE" in lines[1] and "realtime=False" in lines[1]
    assert lines[2].startswith('required refused cannot start the server: realtime="required" but the OS refused SCHED_FIFO'), lines[2]


# The same refusal, seen through Python's `logging`: the server's own warning (Rust's tracing,
# from the first thread refused SCHED_FIFO) reaches the `lalarand.runtime.os` logger. Records
# are collected as caplog does (a handler on the root logger), in the child where the refusal
# is forced.
LOGGED = textwrap.dedent("""
    import logging, os, time, warnings, lalarand
    records = []
    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)
    logging.getLogger().addHandler(Collect())
    logging.getLogger().setLevel(logging.INFO)
    dnn = lalarand.Profile.chain("d", [("a", 1.0, 1.0)])
    system = lalarand.System(lalarand.Platform([lalarand.Resource("cpu", "cpu", cores=[sorted(os.sched_getaffinity(0))[-1]])]), [lalarand.Task("t", dnn, 50.0)])
    allocation = system.allocation({"t": ["cpu-fp32@cpu"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = lalarand.serve(system, allocation, busy=True)
    server.stop()
    end = time.monotonic() + 5  # the records reach logging from a thread of their own
    while time.monotonic() < end and not any("SCHED_FIFO" in r.getMessage() for r in records):
        time.sleep(0.01)
    for r in records:
        print(r.name, r.levelname, r.getMessage())
""")


def test_refused_sched_fifo_reaches_python_logging():
    child = subprocess.run([sys.executable, "-c", LOGGED], capture_output=True, text=True, timeout=60,
                           preexec_fn=_drop_realtime_rights)
    assert child.returncode == 0, child.stderr
    fallback = [line for line in child.stdout.splitlines() if "SCHED_FIFO refused" in line]
    assert len(fallback) == 1, child.stdout + child.stderr
    assert fallback[0].startswith("lalarand.runtime.os WARNING "), fallback[0]
    assert "running under the normal scheduler" in fallback[0]
