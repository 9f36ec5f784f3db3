"""``IndexHandle.first``: the head of a btree index (or of a key prefix) in one lookup,
what a queue such as ``claim_tool_call`` takes its next item with."""

from __future__ import annotations

import pytest

from cosmictron import Database, DurabilityConfig, InvalidRequest

APP = """
from cosmictron import *

@table(public=True, indexes=[Index("queue_seq", ("queue", "seq"))])
class Job:
    id: str = field(primary_key=True)
    queue: str = ""
    seq: int = field(default=0, index="btree")
    owner: str = field(default="", index="hash")

@reducer
def add(ctx: ReducerContext, id: str, queue: str, seq: int) -> None:
    ctx.db.job.insert(Job(id, queue, seq, ""))

@reducer
def take(ctx: ReducerContext, queue: str) -> str:
    job = ctx.db.job.queue_seq.first((queue,))
    if job is None:
        return ""
    ctx.db.job.id.delete(job.id)
    return job.id
"""


@pytest.fixture
def db(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    database = Database.open(
        tmp_path / "data",
        tmp_path / "app.py",
        durability=DurabilityConfig.from_profile("development"),
    )
    yield database
    database.close()


def test_first_takes_the_head_of_a_prefix_in_key_order(db):
    for id_, queue, seq in [("c", "a", 3), ("a", "a", 1), ("x", "b", 0), ("b", "a", 2)]:
        db.call("add", id_, queue, seq)
    jobs = db.table("job")
    assert jobs.queue_seq.first().id == "a"  # no prefix: the smallest whole key
    assert jobs.queue_seq.first(("b",)).id == "x"
    assert jobs.seq.first().id == "x"
    assert jobs.id.first().id == "a"  # the primary key is ordered too
    assert [db.call("take", "a") for _ in range(4)] == ["a", "b", "c", ""]
    assert jobs.queue_seq.first(("a",)) is None and jobs.queue_seq.first(("zz",)) is None


def test_first_refuses_hash_indexes_and_prefixes_of_single_columns(db):
    db.call("add", "a", "q", 1)
    jobs = db.table("job")
    with pytest.raises(InvalidRequest, match="hash index"):
        jobs.owner.first()
    with pytest.raises(InvalidRequest, match="multi-column keys only"):
        jobs.seq.first((1,))
