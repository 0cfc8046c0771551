"""docs/snippets/tritonclient.py, the README's five-line tritonclient program, run as it is
written against the server (its URL replaced by the test server's)."""

import ast
import subprocess
import sys

from conftest import ROOT

SNIPPET = ROOT / "docs" / "snippets" / "tritonclient.py"


def test_the_readmes_tritonclient_program_prints_logits_and_timing(engine_server):
    code = SNIPPET.read_text()
    assert len(code.strip().splitlines()) == 5
    assert "127.0.0.1:8000" in code
    done = subprocess.run([sys.executable, "-c", code.replace("127.0.0.1:8000", engine_server.http)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    digit, params = done.stdout.strip().split(" ", 1)
    assert 0 <= int(digit) <= 9
    params = ast.literal_eval(params)
    assert {"job", "response_ns", "bound_ns", "deadline_met"} <= set(params), params
