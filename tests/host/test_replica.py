"""A read-only replica (``host/replica.py``): it applies a leader's records byte for byte.

The leader here is a real ``Database`` whose records are captured as it writes them (a
``Replicator`` that stores each payload and acknowledges it at once, what JetStream does
in cluster mode); the replica applies them in order. Its tables, offsets and log must be
the leader's, its subscribers must see the leader's updates at the leader's offsets, and
it must refuse every write (the server refuses a call before it runs; the host at the
commit, keeping nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cosmictron import Database, DurabilityConfig
from cosmictron.errors import DurabilityError, NotLeader
from tests.host.counted_module import COUNTED_MODULE

MODULE_V2 = (
    COUNTED_MODULE
    + """

@reducer
def twice(ctx: ReducerContext, n: int) -> None:
    append(ctx, n)
"""
)


class CapturedLog:
    """A ``durability.Replicator`` that keeps every record and acknowledges it at once."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.refuse_commits: Callable[[Exception | None], None] | None = None

    def start(self, last_offset: int, last_hash: bytes) -> None:
        assert last_offset == len(self.payloads)

    def publish(self, offset: int, payload: bytes) -> None:
        assert offset == len(self.payloads) + 1
        self.payloads.append(bytes(payload))

    def wait_acked(self, offset: int) -> None:
        assert offset <= len(self.payloads)

    @property
    def acked_offset(self) -> int:
        return len(self.payloads)

    def close(self) -> None:
        pass


def durability() -> DurabilityConfig:
    return dataclasses.replace(DurabilityConfig.from_profile("development"), signing="off")


def state(db: Database) -> tuple[list[int], int]:
    counter = db.rows("counter")
    return sorted(item.id for item in db.rows("item")), counter[0].value if counter else 0


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(COUNTED_MODULE)
    return path


def test_a_replica_applies_the_leaders_records_and_publishes_them_at_its_offsets(
    tmp_path: Path, module_file: Path
) -> None:
    log = CapturedLog()
    leader = Database.open(tmp_path / "a", module_file, durability=durability(), replicator=log)
    replica = Database.open_replica(tmp_path / "b", module_file, node="b", durability=durability())
    try:
        seen: list[Any] = []
        leader_seen: list[Any] = []
        replica.subscribe(["SELECT * FROM item"], seen.append)
        leader.subscribe(["SELECT * FROM item"], leader_seen.append)
        for n in range(5):
            leader.call("append", n)
        for payload in log.payloads:
            replica.apply_replicated(payload)
        assert state(replica) == state(leader) == ([0, 1, 2, 3, 4], 5)
        assert replica.tx_offset == leader.tx_offset == len(log.payloads)
        assert seen == leader_seen and len(seen) == 5
        # A module update travels as a record like any other: the replica swaps too.
        (tmp_path / "app_v2.py").write_text(MODULE_V2)
        leader.update_module(tmp_path / "app_v2.py")
        leader.call("twice", 9)
        for payload in log.payloads[replica.tx_offset :]:
            replica.apply_replicated(payload)
        assert "twice" in replica.module.reducers
        assert state(replica) == state(leader) == ([0, 1, 2, 3, 4, 9], 6)
        assert seen == leader_seen
        # A record that does not continue the log is refused, and nothing is applied.
        with pytest.raises(DurabilityError):
            replica.apply_replicated(log.payloads[0])
        assert state(replica) == state(leader)
    finally:
        leader.close()
        replica.close()


def test_a_replica_refuses_reducers_and_sql_writes_and_logs_nothing(
    tmp_path: Path, module_file: Path
) -> None:
    replica = Database.open_replica(tmp_path / "b", module_file, node="b", durability=durability())
    try:
        with pytest.raises(NotLeader, match="read-only replica on node b"):
            replica.call("append", 1)
        with pytest.raises(NotLeader):
            replica.sql("INSERT INTO item (id) VALUES (1)")
        assert state(replica) == ([], 0) and replica.tx_offset == 0
        assert replica.sql("SELECT id FROM item").rows == []
    finally:
        replica.close()
    # Reopened as a replica, it is still empty: nothing was written to its log.
    again = Database.open_replica(tmp_path / "b", node="b", durability=durability())
    try:
        assert again.tx_offset == 0
    finally:
        again.close()
