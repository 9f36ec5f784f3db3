"""An index handle a reducer cached stays right after a reader snapshots the table.

A SQL read shares the table with its reader; the table's next write replaces its index
objects with copies. Index handles (``ctx.db.job.status``, ``ctx.db.job.code``) are
cached per table handle, so they must find the index through the table at each use:
a handle that kept the old object answered from the snapshot's frozen index (found by
the agent layer's lease sweep, which moved a call back to pending forever).
"""

from __future__ import annotations

from cosmictron import Database, DurabilityConfig

MODULE = """
from cosmictron import *

@table(public=True)
class Job:
    id: str = field(primary_key=True)
    status: str = field(default="pending", index="btree")
    code: int = field(default=0, unique=True)

@reducer
def add(ctx: ReducerContext, id: str, code: int) -> None:
    ctx.db.job.insert(Job(id, "pending", code))

@reducer
def move(ctx: ReducerContext, old: str, new: str) -> int:
    moved = 0
    for job in ctx.db.job.status.filter(old):
        job.status = new
        ctx.db.job.id.update(job)
        moved += 1
    return moved

@reducer
def recode(ctx: ReducerContext, old: int, new: int) -> None:
    job = ctx.db.job.code.find(old)
    job.code = new
    ctx.db.job.id.update(job)

@reducer
def holder(ctx: ReducerContext, code: int) -> str:
    job = ctx.db.job.code.find(code)
    return "" if job is None else job.id
"""


def test_index_handles_see_writes_made_after_a_sql_read(tmp_path):
    path = tmp_path / "jobs.py"
    path.write_text(MODULE)
    db = Database.open(
        tmp_path / "d", path, durability=DurabilityConfig.from_profile("development")
    )
    try:
        db.call("add", "a", 1)
        assert db.call("move", "pending", "running") == 1
        db.sql("SELECT * FROM job")  # shares the table with a reader
        assert db.call("move", "running", "pending") == 1
        assert db.call("move", "running", "done") == 0  # nothing is running any more
        assert [j.id for j in db.table("job").status.filter("pending")] == ["a"]
        db.sql("SELECT * FROM job")
        db.call("recode", 1, 2)
        assert (db.call("holder", 1), db.call("holder", 2)) == ("", "a")
    finally:
        db.close()
