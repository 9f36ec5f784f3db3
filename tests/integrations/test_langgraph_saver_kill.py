"""Every checkpoint ``CosmictronSaver.put`` acknowledged survives SIGKILL, also when
puts from several threads share fsyncs (group commit under the ``production``
profile): a child process puts from four threads and prints each acknowledged id;
the test kills it mid-run, reopens the directory and reads every printed id back."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="needs the langgraph extra")

from cosmictron import Database, DurabilityConfig
from cosmictron.integrations.langgraph import CosmictronSaver

APP = "from cosmictron import *\nfrom cosmictron.agents import *\n"
THREADS = 4

CHILD = """
import sys, threading
from langgraph.checkpoint.base import empty_checkpoint
from cosmictron import Database, DurabilityConfig
from cosmictron.integrations.langgraph import CosmictronSaver

db = Database.open(sys.argv[1], sys.argv[2],
                   durability=DurabilityConfig.from_profile("production"))
saver = CosmictronSaver(db)
printing = threading.Lock()

def graph(thread: str) -> None:
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    for step in range(100_000):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"step": step, "text": "x" * 500}
        config = saver.put(config, checkpoint, {"step": step}, {})
        saver.put_writes(config, [("step", step)], f"task-{step}")
        with printing:  # acknowledged: both calls returned
            print(thread, config["configurable"]["checkpoint_id"], step, flush=True)

for name in range(int(sys.argv[3])):
    threading.Thread(target=graph, args=(f"g{name}",), daemon=True).start()
threading.Event().wait()
"""


def test_acknowledged_puts_from_threads_survive_sigkill(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    data = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(tmp_path / "app.py"), str(THREADS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[tuple[str, str, int]] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 120
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            thread, checkpoint_id, step = line.split()
            acknowledged.append((thread, checkpoint_id, int(step)))
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # lines printed before the kill but not yet read were acknowledged too
    acknowledged += [
        (t, c, int(s)) for t, c, s in (line.split() for line in rest.splitlines() if line)
    ]
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 200, "the child must have acknowledged puts before the kill"
    assert len({thread for thread, _, _ in acknowledged}) == THREADS
    with Database.open(data, durability=DurabilityConfig.from_profile("production")) as db:
        saver = CosmictronSaver(db)
        for thread, checkpoint_id, step in acknowledged:
            at = dict(thread_id=thread, checkpoint_ns="", checkpoint_id=checkpoint_id)
            found = saver.get_tuple({"configurable": at})
            assert found is not None, (thread, checkpoint_id)
            assert found.checkpoint["channel_values"]["step"] == step
            assert [(w[1], w[2]) for w in found.pending_writes] == [("step", step)]
        assert db.sql("SELECT COUNT(*) FROM graph_checkpoint").rows[0][0] >= len(acknowledged)
