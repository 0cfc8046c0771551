"""Shared fixtures: the workspace's example files and the `lalarand` command line to compare with."""

import json
import os
import pathlib
import signal
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def sigint_as_in_a_terminal():
    """``preexec_fn`` for a child that a test interrupts with SIGINT: the default disposition,
    as a terminal gives it. A job started in the background by a non-interactive shell (``cmd
    &``, nohup, some CI runners) inherits SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def examples():
    return EXAMPLES


def _cli_path():
    # CI sets LALARAND_BIN (and then it must exist); locally the debug build is used if present.
    given = os.environ.get("LALARAND_BIN")
    if given:
        assert pathlib.Path(given).is_file(), f"LALARAND_BIN={given} does not exist"
        return given
    local = ROOT / "target" / "debug" / "lalarand"
    return str(local) if local.is_file() else None


@pytest.fixture
def cli():
    """Runs `lalarand ARGS --json` and returns (exit code, parsed JSON)."""
    path = _cli_path()
    if path is None:
        pytest.skip("no lalarand binary to compare with (build it: cargo build -p lalarand-cli, or set LALARAND_BIN)")

    def run(*args):
        done = subprocess.run([path, *map(str, args), "--json"], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode in (0, 1), f"lalarand {' '.join(map(str, args))}: {done.stderr}"
        return done.returncode, json.loads(done.stdout)

    return run
