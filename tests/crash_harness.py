"""What the crash tests share: SIGKILL a process mid-work, then check what survived.

Four test modules kill something and count: a server under HTTP calls
(``tests/server/test_server_crash.py``, ``tests/server/test_remote_calls.py``), a
process whose relay delivers ``ctx.call_remote`` (``tests/host/test_remote_calls_crash.py``)
and one that applies a NATS inbox stream (``tests/cluster/test_remote_nats.py``). The
harness (load, kill, reap) lives here once; what each test checks after the restart
stays in the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.server.conftest import Server, stop_server

ORDERS = """
from cosmictron import ReducerContext, field, reducer, table

@table(name="order", public=True)
class Order:
    item: int = field(primary_key=True)

@reducer
def place(ctx: ReducerContext, item: int) -> None:
    ctx.db.order.insert(Order(item=item))
    ctx.call_remote("billing", "charge", item)
"""
"""Orders placing integer items, each calling ``billing.charge`` once."""

BILLING = """
from cosmictron import ReducerContext, field, reducer, table

@table(name="charge", public=True)
class Charge:
    id: int = field(primary_key=True, auto_inc=True)
    item: int = 0

@reducer
def charge(ctx: ReducerContext, item: int) -> None:
    ctx.db.charge.insert(Charge(item=item))   # no unique key: a second apply would show
"""
"""The target of ``ORDERS``: one row per applied call, so a call applied twice shows."""


def spawn_python(script: Path, *args: str) -> subprocess.Popen[str]:
    """Run ``script`` in a child Python that imports what this one does; output piped."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def sigkill(process: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGKILL ``process`` and reap it; what it printed to stdout and stderr."""
    process.send_signal(signal.SIGKILL)
    return process.communicate(timeout=30)


def call_until_sigkill(
    server: Server, path: str, workers: int, base: int, kill_after_s: float
) -> set[int]:
    """POST ``[n]`` to ``path`` from ``workers`` threads (worker ``w`` sends ``base + w``,
    then ``workers`` more each time), SIGKILL the server after ``kill_after_s`` and
    return every ``n`` whose call was acknowledged (a 200)."""
    acknowledged: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def write(worker: int) -> None:
        n = base + worker
        while not stop.is_set():
            try:
                reply = server.request("POST", path, [n])
            except OSError:
                return  # the server died mid-request: not acknowledged
            if reply.status == 200:
                with lock:
                    acknowledged.add(n)
            n += workers

    threads = [threading.Thread(target=write, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    time.sleep(kill_after_s)
    server.process.send_signal(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    stop_server(server, signal.SIGKILL)
    return acknowledged


__all__ = ["BILLING", "ORDERS", "call_until_sigkill", "sigkill", "spawn_python"]
