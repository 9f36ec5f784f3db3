"""A real server process on a free port, and a small HTTP client for the tests.

``server`` starts ``cosmictron-cli start --listen 127.0.0.1:0`` (the installed binary)
in a temporary data directory and reads the address it prints; it is stopped with
SIGTERM at teardown, and the test fails if it does not stop cleanly.

Deploying needs the right to deploy (docs/guide/security.md): ``Server.operator()`` is
the operator, read from ``<data-dir>/server/operator.token`` as a user on the server's
machine would; ``Server.deployer()`` is a new identity the operator granted the right;
``Server.identity()`` is a new identity with no rights, what ``POST /v1/identity`` gives
anyone. ``start`` saves the operator's token in the CLI settings of the user who starts
it: ``start_server`` points that at ``<data-dir>/../config`` (the CLI tests' settings
directory) unless ``COSMICTRON_CONFIG_DIR`` is set, so no test writes the real user's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CLI = shutil.which("cosmictron-cli", path=str(Path(sys.executable).parent)) or "cosmictron-cli"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "app.py"


def refuse_constant(name: str) -> Any:
    raise ValueError(f"the server sent {name}, which strict JSON parsers refuse")


@contextlib.contextmanager
def shared_server(
    tmp_path_factory: pytest.TempPathFactory,
    env: dict[str, str] | None = None,
    refuse_tracebacks: bool = False,
) -> Iterator[Server]:
    """A server for a module-scoped fixture (a start costs a second or more), for tests
    that each deploy a database of their own (``fresh_database``) and change nothing
    server-wide. Stopped as cleanly as ``server``; with ``refuse_tracebacks``, a
    traceback in its output fails the module's last test."""
    running = start_server(
        tmp_path_factory.mktemp("shared-server") / "server-data",
        "--profile",
        "development",
        env=env,
    )
    STARTED.remove(running.process)  # it outlives each test: this fixture stops it
    try:
        yield running
    finally:
        out = stop_server(running)
        assert running.process.returncode == 0, out
        assert "cosmictron stopped" in out, out
        assert not refuse_tracebacks or "Traceback" not in out, out


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``shared_server`` for every test of a module that asks for it."""
    with shared_server(tmp_path_factory) as running:
        yield running


@contextlib.contextmanager
def fresh_database(server: Server, name: str, source: str) -> Iterator[str]:
    """Deploy ``source`` as ``name`` with a new deployer, yield its token, then delete the
    database: each test of a shared server starts from a database as new as its own
    server would give it."""
    _, token = server.deployer()
    reply = server.deploy(name, source, token)
    assert reply.status == 201, reply
    yield token
    reply = server.request("DELETE", f"/v1/database/{name}", token=token)
    assert reply.status == 200, reply


def refuse_overflow(text: str) -> float:
    value = float(text)
    if value - value != 0.0:
        raise ValueError(f"the server sent {text}, past the float range (strict parsers refuse)")
    return value


def strict_loads(data: str | bytes) -> Any:
    """Parse JSON as strict clients (browsers, serde, Go) do: ``NaN``, ``Infinity`` and
    numbers past the float range are errors. Every reply, update and export the server
    tests read goes through this, so any of them carrying one fails its test."""
    return json.loads(data, parse_constant=refuse_constant, parse_float=refuse_overflow)


@dataclass
class Reply:
    status: int
    body: Any


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | Any = None,
        token: str | None = None,
        content_type: str | None = None,
    ) -> Reply:
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
            content_type = content_type or "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, strict_loads(response.read() or b"null"))
        except urllib.error.HTTPError as error:
            return Reply(error.code, strict_loads(error.read() or b"null"))

    def identity(self) -> tuple[str, str]:
        reply = self.request("POST", "/v1/identity")
        assert reply.status == 200, reply
        return reply.body["identity"], reply.body["token"]

    def operator(self) -> tuple[str, str]:
        """The operator's identity and token, from ``<data-dir>/server/operator.token``."""
        token = (self.data_dir / "server" / "operator.token").read_text().strip()
        reply = self.request("GET", "/v1/identity", token=token)
        assert reply.status == 200 and reply.body["operator"] is True, reply
        return reply.body["identity"], token

    def metrics_request(self) -> urllib.request.Request:
        """``GET /metrics`` with the scrape token (``<data-dir>/server/metrics.token``),
        which sees every database's series; anonymous scrapes get server-wide ones only."""
        token = (self.data_dir / "server" / "metrics.token").read_text().strip()
        return urllib.request.Request(
            self.url + "/metrics", headers={"Authorization": f"Bearer {token}"}
        )

    def grant_deploy(self, identity: str) -> Reply:
        _, operator_token = self.operator()
        return self.request("PUT", f"/v1/grants/deploy/{identity}", token=operator_token)

    def deployer(self) -> tuple[str, str]:
        """A new identity the operator granted the right to deploy."""
        identity, token = self.identity()
        reply = self.grant_deploy(identity)
        assert reply.status == 200 and reply.body["granted"] is True, reply
        return identity, token

    def deploy(self, name: str, source: bytes | str, token: str, clear: bool = False) -> Reply:
        suffix = "?clear=true" if clear else ""
        return self.request("PUT", f"/v1/database/{name}{suffix}", source, token)


STARTED: list[subprocess.Popen[str]] = []
"""Every server process a test started; ``tests/conftest.py`` kills any left running."""


def start_server(
    data_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Server:
    """Start a server; ``preexec_fn`` runs in the child before it starts (e.g. to lower
    its ``RLIMIT_NOFILE``)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.setdefault("COSMICTRON_CONFIG_DIR", str(data_dir.parent / "config"))
    process = subprocess.Popen(
        [CLI, "start", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=preexec_fn,
    )
    STARTED.append(process)
    assert process.stdout is not None
    first = process.stdout.readline()
    if "listening on " not in first:
        process.kill()
        rest, _ = process.communicate(timeout=30)  # reaps it and closes its pipe
        raise AssertionError(f"the server did not start: {first}{rest}")
    url = first.split("listening on ", 1)[1].split()[0]
    return Server(url, data_dir, process, [first])


def stop_server(server: Server, sig: int = signal.SIGTERM) -> str:
    """Stop the server; return what it printed after the first line."""
    if server.process.poll() is None:
        server.process.send_signal(sig)
    out, _ = server.process.communicate(timeout=30)
    return out


def stop_read_server(server: Server, reader: threading.Thread) -> None:
    """Stop a server whose output a thread of the test reads (``log.extend(stdout)``):
    wait for the process to exit, then for the reader to reach the end of the pipe.
    ``stop_server``'s ``communicate`` would race the reader for the pipe and close it
    under it (``ValueError: I/O operation on closed file`` in the reader thread)."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)
    reader.join(timeout=10)
    if server.process.stdout is not None and not reader.is_alive():
        server.process.stdout.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "server-data", "--profile", "development")
    yield running
    out = stop_server(running)
    assert running.process.returncode == 0, out
    assert "cosmictron stopped" in out, out
