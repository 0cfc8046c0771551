"""Start and stop `lalarand serve --listen ...` from Python.

The one launcher the multi-process example (run.py), the load test (load.py), the Triton
benchmark (scripts/bench/triton_vs_lalarand.py) and the server's pytest suite
(crates/server/tests/python) share. The server prints `lalarand: listening on <url>` on stderr
per endpoint once it serves (port 0 asks for a free port; the printed URL has the real one);
SIGTERM drains it and ends it.
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"lalarand: listening on (\S+)")


def find_binary(given=None):
    """`given`, else $LALARAND_BIN, else `lalarand` on the PATH, else this checkout's build."""
    for candidate in [given, os.environ.get("LALARAND_BIN"), shutil.which("lalarand"),
                      ROOT / "target" / "release" / "lalarand", ROOT / "target" / "debug" / "lalarand"]:
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    raise FileNotFoundError("no lalarand binary: build it (cargo build -p lalarand-cli) or set LALARAND_BIN")


class ServeProcess:
    """`lalarand serve ARGS --listen http://127.0.0.1:0 --listen grpc://127.0.0.1:0
    [--listen grpc+unix://SOCKET]`, started and waited for until every endpoint listens.

    `http` and `grpc` are `host:port` (what tritonclient's clients take), `unix` is
    `unix://SOCKET` (tritonclient's gRPC client over a Unix socket) or None.
    """

    def __init__(self, args, binary=None, unix_socket=False, extra_listen=(), ready_timeout=180.0, cwd=ROOT):
        self.binary = find_binary(binary)
        self._stopped = None
        self._scratch = tempfile.mkdtemp(prefix="lalarand-serve-")
        self.socket_path = os.path.join(self._scratch, "serve.sock") if unix_socket else None
        listen = ["http://127.0.0.1:0", "grpc://127.0.0.1:0", *extra_listen]
        if self.socket_path:
            listen.append(f"grpc+unix://{self.socket_path}")
        command = [self.binary, "serve", *map(str, args)]
        for url in listen:
            command += ["--listen", url]
        self.command = command
        self._stdout = open(os.path.join(self._scratch, "stdout"), "w+")
        self.process = subprocess.Popen(command, cwd=cwd, stdout=self._stdout, stderr=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self.stderr_lines = []
        self.urls = []
        self._all_listening = threading.Event()
        self._expected = len(listen)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + ready_timeout
        while not self._all_listening.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {self.process.returncode}" if self.process.poll() is not None else \
                    f"did not listen within {ready_timeout:.0f} s"
                self.stop(timeout=5)
                raise RuntimeError(f"`{' '.join(command)}` {why}:\n" + "".join(self.stderr_lines[-40:]))

    def _read_stderr(self):
        for line in self.process.stderr:
            self.stderr_lines.append(line)
            found = LISTENING.search(line)
            if found:
                self.urls.append(found.group(1))
                if len(self.urls) >= self._expected:
                    self._all_listening.set()

    def _url(self, scheme):
        for url in self.urls:
            if url.startswith(scheme + "://"):
                return url[len(scheme) + 3:].rstrip("/")
        return None

    @property
    def http(self):
        return self._url("http")

    @property
    def grpc(self):
        return self._url("grpc")

    @property
    def unix(self):
        path = self._url("grpc+unix")
        return f"unix://{path}" if path else None

    def rss_kib(self):
        """The server's resident memory (VmRSS of /proc/PID/status), KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no VmRSS in /proc/{self.pid}/status")

    def stop(self, timeout=60.0):
        """SIGTERM (the server drains), wait; returns (exit status, stdout). Kills it past
        `timeout` and says so. A second call returns the first one's answer."""
        if self._stopped is not None:
            return self._stopped
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self.stderr_lines.append(f"(killed: still running {timeout:.0f} s after SIGTERM)\n")
        self._reader.join(5)
        self._stdout.seek(0)
        out = self._stdout.read()
        self._stdout.close()
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._stopped = (self.process.returncode, out)
        return self._stopped

    def stderr(self):
        return "".join(self.stderr_lines)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
