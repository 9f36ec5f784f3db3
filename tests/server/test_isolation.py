"""One database's slow reducer blocks neither another database nor the server.

Database ``slow`` has a reducer that waits until a file appears; while it waits, a call
to database ``fast`` and the health route must complete. If either were queued behind
the slow call, it would wait for the file, which is only written after they return, and
the test would time out instead of passing.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tests.server.conftest import Server

SLOW = """
import time
from pathlib import Path
from cosmictron import *

@reducer
def wait_for(ctx: ReducerContext, path: str) -> str:
    Path(path + ".started").write_text("")
    for _ in range(600):
        if Path(path).exists():
            return "released"
        time.sleep(0.05)
    raise TimeoutError("never released")
"""

FAST = """
from cosmictron import *

@table(public=True)
class Hit:
    id: int = field(primary_key=True, auto_inc=True)

@reducer
def hit(ctx: ReducerContext) -> int:
    return ctx.db.hit.insert(Hit()).id
"""


def test_a_blocked_database_blocks_no_other(server: Server, tmp_path: Path) -> None:
    _, token = server.deployer()
    assert server.deploy("slow", SLOW, token).status == 201
    assert server.deploy("fast", FAST, token).status == 201
    gate = tmp_path / "gate"
    replies = []
    blocked = threading.Thread(
        target=lambda: replies.append(
            server.request("POST", "/v1/database/slow/call/wait_for", [str(gate)])
        )
    )
    blocked.start()
    try:
        started = Path(str(gate) + ".started")
        for _ in range(600):
            if started.exists():
                break
            threading.Event().wait(0.05)
        assert started.exists(), "the slow reducer never started"
        assert server.request("GET", "/v1/health").status == 200
        for expected in (1, 2, 3):
            reply = server.request("POST", "/v1/database/fast/call/hit", [])
            assert reply.status == 200 and reply.body["return_value"] == expected
        assert not replies, "the slow call finished before it was released"
    finally:
        gate.write_text("")
        blocked.join(timeout=60)
    assert replies[0].status == 200 and replies[0].body["return_value"] == "released"
