"""Writes ``agents-ee63d5a/``: a database made by the code at commit ee63d5a, before
``agent_thread.owner`` and the ``tool_call`` status indexes existed.

Kept to show how the fixture was made (test_agent_tables_grow.py reopens it with the
current code); run it from a worktree at that commit:

    git worktree add --detach /tmp/old ee63d5a
    PYTHONPATH=/tmp/old/src python tests/agents/data/make_agents_ee63d5a.py OUT_DIR
"""

import sys
from pathlib import Path

from cosmictron import Database, DurabilityConfig

V1 = b"from cosmictron.agents import *\n"
V2 = V1 + b"\n\n@reducer\ndef ping(ctx: ReducerContext) -> str:\n    return 'pong'\n"
V2 = b"from cosmictron import ReducerContext, reducer\n" + V2

out = Path(sys.argv[1])
durability = DurabilityConfig.from_profile("development")
app = out.parent / "app.py"
app.write_bytes(V1)
db = Database.open(out, app, durability=durability)
db.call("register_agent", "solo", "worker", "", [])
db.call("start_thread", "t1", "solo", "")
db.call("record_tool_call", "c1", "t1", "solo", "search", "{}")
db.snapshot()  # the snapshot holds 7-column agent_thread rows
db.call("start_thread", "t2", "solo", "")
db.call("record_tool_call", "c2", "t2", "solo", "search", '{"q": 2}')
db.update_module(V2, filename="app.py")  # a module record of the old tables
db.call("start_thread", "t3", "solo", "")
db.call("record_tool_call", "c3", "t3", "solo", "fetch", "{}")
db.close()
app.unlink()
