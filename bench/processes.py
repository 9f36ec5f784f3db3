"""The child processes a benchmark starts: a ``cosmictron-cli start`` server, and CPU time.

Benchmarks that measure the server (``server.py``, ``query_budget.py``, ``bulk_http.py``)
start it the way a user does, in a process of its own, so that its figures include the
real HTTP and WebSocket edges. Starting one takes care that is easy to get subtly wrong
in three copies: the CLI settings the start writes (the operator's token) go to a
directory of the benchmark's, never the user's ``~/.config``; the address is read from
the server's own ``cosmictron listening on`` line, as the port is chosen by the kernel;
and deploying needs the right to deploy, so requests carry the operator's token that the
server wrote to ``DATA_DIR/server/operator.token``.

Only the standard library: the server benchmark's load-generator process imports this
module's neighbours and must not pay for importing Cosmictron.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LISTENING_TIMEOUT_S = 30.0

# The CLI's entry point run by this interpreter (so PYTHONPATH and the venv apply), named
# as the installed script names itself; ``main()`` is appended unless a caller wraps it.
CLI_PRELUDE = "import sys; from cosmictron.cli.main import main; sys.argv[0] = 'cosmictron-cli'"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for peers that need one given)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """User + system CPU clock ticks of each of ``pids`` (all its threads), from /proc."""
    ticks = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks


def cpu_delta(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds spent between two samples by the processes alive at the second one.

    A process that ended in between is left out (its last ticks are unknown); one that
    started in between counts from zero.
    """
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / CLOCK_TICKS


class CliServer:
    """``cosmictron-cli start`` on ``127.0.0.1:0`` in a child process, used as its operator.

    Everything it writes (data, CLI settings, its log) is under a new directory in
    ``parent``, removed by ``stop()``. ``launcher`` is the Python code that runs the
    CLI; the default is :data:`CLI_PRELUDE` followed by ``main()`` (the server benchmark
    wraps ``main()`` in a profiler). ``wrapper`` runs the interpreter under another
    program (``server_instructions.py``: valgrind, which needs a longer start-up).
    """

    def __init__(
        self,
        parent: str,
        prefix: str,
        *,
        profile: str = "production",
        launcher: str = CLI_PRELUDE + "; main()",
        wrapper: tuple[str, ...] = (),
        listening_timeout_s: float = LISTENING_TIMEOUT_S,
    ) -> None:
        self.dir = tempfile.mkdtemp(prefix=prefix, dir=parent)
        self.data_dir = Path(self.dir) / "data"
        self.log_path = Path(self.dir) / "server.log"
        command = [*wrapper, sys.executable, "-c", launcher, "start", "--listen", "127.0.0.1:0"]
        command += ["--data-dir", str(self.data_dir), "--profile", profile]
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        # start saves the operator's token in the CLI settings: keep them in our directory
        env = {**os.environ, "COSMICTRON_CONFIG_DIR": str(Path(self.dir) / "config")}
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        try:
            self.url = self._wait_listening(listening_timeout_s)
        except BaseException:  # never leave the child running
            self.stop()
            raise
        self.host, _, port = self.url.removeprefix("http://").partition(":")
        self.port = int(port)
        # Deploying needs the right to deploy: act as the operator the server made.
        self.token = (self.data_dir / "server" / "operator.token").read_text().strip()

    def _wait_listening(self, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_path.read_text()[-2000:]}")
            for line in self.log_path.read_text().splitlines():
                if line.startswith("cosmictron listening on "):
                    return line.split()[3]
            time.sleep(0.05)
        raise RuntimeError(f"the server did not print its address within {seconds:g} s")

    def request(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        authorized: bool = True,
        content_type: str = "application/json",
        timeout_s: float = 120.0,
    ) -> tuple[int, Any]:
        """Send one request (as the operator unless ``authorized`` is False).

        Returns:
            The HTTP status and the reply's JSON, for errors as for successes.
        """
        request = urllib.request.Request(self.url + path, data=body, method=method)
        request.add_header("Content-Type", content_type)
        if authorized:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def deploy(self, name: str, source: bytes) -> str:
        """Publish ``source`` as database ``name``; return its WebSocket subscribe URL.

        Raises:
            RuntimeError: the server refused the module (its reply is in the message).
        """
        status, reply = self.request(
            "PUT", f"/v1/database/{name}", source, content_type="text/x-python"
        )
        if status not in (200, 201):
            raise RuntimeError(f"deploying {name!r} failed: {status} {reply}")
        return self.url.replace("http://", "ws://") + f"/v1/database/{name}/subscribe"

    def pids(self) -> list[int]:
        """The processes whose CPU time is the server's: just the one."""
        return [self.proc.pid]

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after 30 s; then remove the directory."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
