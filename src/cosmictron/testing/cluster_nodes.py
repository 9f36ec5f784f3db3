"""``ClusterNodes``: Cosmictron node processes of one cluster, and a client that finds leaders.

Fault tests and ``bench/cluster.py`` run real ``cosmictron-cli start --cluster … --node-id
…`` processes against a :class:`~cosmictron.testing.nats.NatsCluster` and do to them what
happens to machines: SIGKILL and restart (same data directory, a new port), SIGSTOP and
SIGCONT. Each process's output is drained by a thread (an undrained pipe would block a
chatty server) and kept for a failure's message.

:class:`LeaderClient` sends a request to a node and, when the answer is ``503
not_leader`` from a node that did not run it (it names the leader: "led by NAME"), or the
connection is refused, sends it again to the leader or to another node. It never repeats
a request whose outcome is unknown (a timeout, a dropped connection, ``503
cluster_unavailable``, a fenced leader's ``not_leader``): the caller records those as
unknown (:mod:`cosmictron.testing.history`). Once followers forward and serve reads, the
first node simply answers and the redirect is never taken.

Imports only the standard library.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["ok", "fail", "info"]

LED_BY = re.compile(r"led by ([A-Za-z0-9_.-]+?)[;,:\s]")
"""A non-leader's ``not_leader`` message names the leader this way (``cluster/node.py``)."""

NOTHING_RAN = "nothing ran"
"""What a forwarding node's ``503 cluster_unavailable`` says when the request certainly had
no effect (``server/forwarding.py``'s ``NOTHING_RAN``; a test keeps the two equal)."""

REFUSED_BEFORE_RUNNING = ("does not forward", "no leader yet", "not by this node")
"""Phrases of a ``not_leader`` raised before the request ran (``ClusterNode.not_leader``,
``open_leader``): it certainly had no effect, so it may be sent again elsewhere. A
``not_leader`` without them (a fenced leader's refused append) has an unknown outcome."""


def cli_binary() -> str:
    """The ``cosmictron-cli`` beside this interpreter, else ``PATH``'s."""
    beside = Path(sys.executable).parent / "cosmictron-cli"
    return str(beside) if beside.exists() else shutil.which("cosmictron-cli") or "cosmictron-cli"


@dataclass
class NodeProcess:
    """One node: its id, data directory, current process and URL, and its output."""

    node_id: str
    data_dir: Path
    url: str = ""
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    frozen: bool = False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ClusterNodes:
    """Start, stop, kill, freeze and restart Cosmictron nodes of one NATS cluster.

    Args:
        base_dir: each node keeps its data under ``base_dir/<node id>``.
        nats_url: the NATS servers, comma-separated (``--cluster``); empty: single-node
            servers (a benchmark's peer), started without ``--cluster``.
        node_ids: the nodes' ids.
        extra: more ``start`` arguments (default ``--profile development``).
    """

    def __init__(
        self,
        base_dir: Path,
        nats_url: str,
        node_ids: list[str],
        extra: tuple[str, ...] = ("--profile", "development"),
    ) -> None:
        self.base_dir = base_dir
        self.nats_url = nats_url
        self.extra = extra
        self.nodes = {node_id: NodeProcess(node_id, base_dir / node_id) for node_id in node_ids}
        self._lock = threading.Lock()

    def start(self, node_id: str, timeout: float = 60.0) -> NodeProcess:
        """Start (or restart) ``node_id`` and wait for its "listening on" line."""
        node = self.nodes[node_id]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("COSMICTRON_CONFIG_DIR", str(self.base_dir / "config"))
        cluster = ["--cluster", self.nats_url, "--node-id", node_id] if self.nats_url else []
        process = subprocess.Popen(
            [cli_binary(), "start", "--listen", "127.0.0.1:0", "--data-dir", str(node.data_dir),
             *cluster, *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=env,
        )  # fmt: skip
        assert process.stdout is not None
        listening = threading.Event()

        def drain() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                node.output.append(line)
                if "listening on " in line and not listening.is_set():
                    node.url = line.split("listening on ", 1)[1].split()[0]
                    listening.set()
            process.stdout.close()  # at the end of the output: the process has exited
            listening.set()

        node.process = process
        node.frozen = False
        threading.Thread(target=drain, name=f"drain-{node_id}", daemon=True).start()
        if not listening.wait(timeout) or process.poll() is not None:
            process.kill()
            process.wait()
            raise RuntimeError(f"node {node_id} did not start: {''.join(node.output)[-3000:]}")
        return node

    def start_all(self) -> None:
        for node_id in self.nodes:
            self.start(node_id)

    def url(self, node_id: str) -> str:
        return self.nodes[node_id].url

    def kill(self, node_id: str) -> None:
        """SIGKILL (a crash: nothing flushed, no goodbye) and reap."""
        node = self.nodes[node_id]
        if node.alive():
            assert node.process is not None
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()
        node.frozen = False

    def freeze(self, node_id: str) -> None:
        """SIGSTOP: the process keeps its sockets and its belief that it leads."""
        node = self.nodes[node_id]
        if node.alive() and not node.frozen:
            assert node.process is not None
            node.process.send_signal(signal.SIGSTOP)
            node.frozen = True

    def thaw(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.alive() and node.frozen:
            assert node.process is not None
            node.process.send_signal(signal.SIGCONT)
        node.frozen = False

    def stop(self, node_id: str, timeout: float = 30.0) -> int | None:
        """SIGTERM (after SIGCONT) and wait; the exit code (None: it had to be killed)."""
        node = self.nodes[node_id]
        if node.process is None:
            return None
        if node.alive():
            self.thaw(node_id)
            node.process.send_signal(signal.SIGTERM)
            try:
                node.process.wait(timeout)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
                return None
        return node.process.returncode

    def stop_all(self) -> dict[str, int | None]:
        return {node_id: self.stop(node_id) for node_id in self.nodes}

    def operator_token(self, node_id: str) -> str:
        return (self.nodes[node_id].data_dir / "server" / "operator.token").read_text().strip()

    def output(self, node_id: str, tail: int = 3000) -> str:
        return "".join(self.nodes[node_id].output)[-tail:]


@dataclass
class Answer:
    """How a request ended: ``ok`` / ``fail`` (certainly no effect) / ``info`` (unknown)."""

    outcome: Outcome
    status: int
    body: Any
    node: str
    error: str = ""


def http_json(
    url: str, method: str, path: str, body: Any = None, token: str | None = None,
    timeout: float = 5.0, raw: bytes | None = None,
) -> tuple[int, Any]:  # fmt: skip
    """One HTTP request; ``(status, decoded JSON body)``. Raises ``OSError`` on transport
    failures (``ConnectionRefusedError`` when nothing listens)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text or b"null")
        except ValueError:
            return error.code, {"error": {"code": "", "message": text.decode(errors="replace")}}
    except urllib.error.URLError as error:
        reason = error.reason
        raise reason if isinstance(reason, OSError) else OSError(str(reason)) from error


class LeaderClient:
    """Requests to a cluster's nodes that follow ``not_leader`` to the leader (module doc).

    Args:
        nodes: the node processes (their URLs change when they restart).
        tokens: a token per node id (identities are per node until they are cluster-wide).
        timeout: one request's HTTP timeout.
        redirect_for: how long a request keeps following redirects before it gives up
            (as ``fail``: every attempt was refused before running).
    """

    def __init__(
        self,
        nodes: ClusterNodes,
        tokens: dict[str, str],
        *,
        timeout: float = 5.0,
        redirect_for: float = 15.0,
        rng: random.Random | None = None,
    ) -> None:
        self.nodes = nodes
        self.tokens = tokens
        self.timeout = timeout
        self.redirect_for = redirect_for
        self.rng = rng or random.Random(0)
        self.redirects = 0

    def request(self, node_id: str, method: str, path: str, body: Any = None) -> Answer:
        """Send to ``node_id``, following refusals-before-running (see the class doc)."""
        deadline = time.monotonic() + self.redirect_for
        target = node_id
        last = ""
        while True:
            url = self.nodes.url(target)
            try:
                if not url:  # never started: nothing listens there
                    raise ConnectionRefusedError(f"{target} has not started")
                status, reply = http_json(
                    url, method, path, body, self.tokens.get(target), self.timeout
                )
            except ConnectionRefusedError as exc:  # nothing listens: it never arrived
                last = f"{target}: connection refused ({exc})"
                status, reply = 0, None
            except TimeoutError as exc:
                return Answer("info", 0, None, target, f"{target}: timed out ({exc})")
            except OSError as exc:  # reset, dropped: it may have run
                return Answer("info", 0, None, target, f"{target}: {exc!r}")
            if 200 <= status < 300:
                return Answer("ok", status, reply, target)
            if status:
                error = (reply or {}).get("error", {}) if isinstance(reply, dict) else {}
                code, message = error.get("code", ""), error.get("message", "")
                last = f"{target}: {status} {code}: {message}"
                if status == 503 and code == "not_leader" and _refused_before_running(message):
                    named = LED_BY.search(message + " ")
                    leader = named.group(1) if named else None
                    if leader in self.nodes.nodes and leader != target:
                        target = leader
                        self.redirects += 1
                        continue
                elif status == 503 and NOTHING_RAN in message:
                    # Refused by a forwarding node before anything reached a leader: no
                    # effect, for certain. Wait as a client honouring Retry-After would.
                    time.sleep(0.1)
                    return Answer("fail", status, reply, target, last)
                elif status >= 500 or status in (408, 429):
                    return Answer("info", status, reply, target, last)
                else:
                    return Answer("fail", status, reply, target, last)
            if time.monotonic() > deadline:
                return Answer("fail", status, reply, target, f"gave up redirecting: {last}")
            time.sleep(0.1)
            target = self.rng.choice(sorted(n for n, p in self.nodes.nodes.items() if p.url))


def _refused_before_running(message: str) -> bool:
    return any(phrase in message for phrase in REFUSED_BEFORE_RUNNING)
