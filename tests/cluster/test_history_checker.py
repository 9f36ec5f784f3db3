"""The history checker itself (``cosmictron.testing.history``), fed histories built by hand.

A fault test that passes proves little unless its checker is known to fail on the
anomalies it looks for: each test here hands it one broken promise (a lost write, a
doubled one, a dirty read, ...) and expects exactly that anomaly, and a valid history
(with unknown outcomes, stale follower reads and a deposed leader's unacknowledged tail)
to pass.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cosmictron
from cosmictron.testing.history import (
    History,
    LogRecord,
    check,
    read_local_log,
    reducer_values,
)


def record(offset: int, *values: int, salt: str = "") -> LogRecord:
    digest = hashlib.sha256(f"{offset}:{values}:{salt}".encode()).digest()
    return LogRecord(offset, digest, values)


def clean_run() -> tuple[History, list[LogRecord]]:
    """Writes 1, 2, 3 acknowledged, 4 unknown and committed, 5 unknown and not committed,
    6 refused; reads at the leader and a lagging follower; an epoch record at offset 3."""
    h = History()
    for value, offset in ((1, 1), (2, 2), (3, 4)):
        h.complete(h.invoke(0, "write", "a", value), "ok", offset=offset)
    h.complete(h.invoke(1, "write", "a", 4), "info", error="timed out")
    h.complete(h.invoke(1, "write", "a", 5), "info", error="503 cluster_unavailable")
    h.complete(h.invoke(2, "write", "b", 6), "fail", error="503 not_leader: led by a")
    h.complete(h.invoke(2, "read", "a"), "ok", read=[1, 2, 3, 4], offset=5)
    h.complete(h.invoke(2, "read", "b"), "ok", read=[1], offset=1)  # a follower behind
    h.complete(h.invoke(2, "read", "c"), "ok", read=[1, 2])  # no offset given
    log = [record(1, 1), record(2, 2), record(3), record(4, 3), record(5, 4)]
    return h, log


def test_a_valid_history_passes() -> None:
    h, log = clean_run()
    # b was deposed holding offset 3 unacknowledged (value 5): a tail it drops on rejoin.
    nodes = {"a": log, "b": [*log[:2], record(3, 5, salt="b's own")], "c": log[:3]}
    report = check(h, log, nodes)
    assert report.valid, report.summary()
    assert report.stats["nodes with an unacknowledged tail"] == {"b": 3}
    assert report.stats["values committed"] == 4


def test_a_lost_write_is_caught() -> None:
    h, log = clean_run()
    report = check(h, [log[0], record(2), *log[2:]])  # offset 2 no longer holds value 2
    assert report.kinds() == {"lost", "read-offset", "dirty-read"}, report.summary()
    assert any("value 2: acknowledged at offset 2" in a.detail for a in report.anomalies)


def test_a_duplicated_write_is_caught() -> None:
    h, log = clean_run()
    report = check(h, [*log, record(6, 3)])  # a retry stored value 3 a second time
    assert report.kinds() == {"duplicated"}, report.summary()
    (anomaly,) = report.anomalies
    assert anomaly.detail == "value 3 is in the log 2 times"


def test_a_doubled_row_in_a_read_is_caught() -> None:
    h, log = clean_run()
    h.complete(h.invoke(3, "read", "a"), "ok", read=[1, 2, 2, 3])
    assert check(h, log).kinds() == {"duplicated"}


def test_a_dirty_read_is_caught() -> None:
    h, log = clean_run()
    # A deposed leader served value 5 from its unacknowledged tail: never committed.
    h.complete(h.invoke(3, "read", "b"), "ok", read=[1, 2, 5])
    report = check(h, log)
    assert report.kinds() == {"dirty-read"}, report.summary()
    assert "returned value 5, which was never committed" in report.anomalies[0].detail


def test_a_read_that_is_not_the_log_at_its_offset_is_caught() -> None:
    h, log = clean_run()
    h.complete(h.invoke(3, "read", "b"), "ok", read=[1, 3], offset=2)  # 3 is at offset 4
    assert check(h, log).kinds() == {"read-offset"}


def test_a_read_of_a_value_written_after_it_is_caught() -> None:
    h, log = clean_run()
    read = h.complete(h.invoke(3, "read", "a"), "ok", read=[1, 2, 7])
    h.complete(h.invoke(3, "write", "a", 7), "ok", offset=6)
    assert read.completed is not None
    assert check(h, [*log, record(6, 7)]).kinds() == {"future-read"}


def test_a_certainly_failed_write_that_committed_is_caught() -> None:
    h, log = clean_run()
    assert check(h, [*log, record(6, 6)]).kinds() == {"failed-committed"}


def test_a_value_nobody_wrote_is_caught() -> None:
    h, log = clean_run()
    assert check(h, [*log, record(6, 99)]).kinds() == {"phantom"}


def test_an_acknowledged_offset_holding_another_record_is_caught() -> None:
    h, log = clean_run()
    h.ops[0].offset = 2  # value 1 acknowledged at 2, but it is at 1
    assert check(h, log).kinds() == {"ack-offset"}


def test_a_gap_in_the_log_is_caught() -> None:
    h, log = clean_run()
    assert "log-gap" in check(h, [log[0], *log[2:]]).kinds()


def test_node_logs_that_disagree_on_acknowledged_records_are_caught() -> None:
    h, log = clean_run()
    # c holds acknowledged value 2 at offset 3 (the log has it at 2): two histories.
    c = [log[0], record(2, salt="c"), record(3, 2)]
    report = check(h, log, {"a": log, "c": c})
    assert report.kinds() == {"node-log"}, report.summary()
    assert "c: offset 3 holds acknowledged value(s) [2]" in report.anomalies[0].detail


def test_operations_still_in_flight_count_as_unknown() -> None:
    h, log = clean_run()
    h.invoke(4, "write", "a", 8)  # never completed: the client was cut off
    assert check(h, [*log, record(6, 8)]).valid
    assert check(h, log).valid


def test_a_real_log_reads_as_records(tmp_path: Path) -> None:
    module = tmp_path / "app.py"
    module.write_text(
        "from cosmictron import ReducerContext, field, reducer, table\n"
        "@table(name='item')\n"
        "class Item:\n"
        "    id: int = field(primary_key=True, auto_inc=True)\n"
        "    value: int = 0\n"
        "@reducer\n"
        "def add(ctx: ReducerContext, value: int) -> int:\n"
        "    ctx.db.item.insert(Item(value=value))\n"
        "    return value\n"
    )
    with cosmictron.Database.open(tmp_path / "db", str(module)) as db:
        for value in (10, 11, 11):
            db.call("add", value)
        db.sql("INSERT INTO item (value) VALUES (12)")
    records = read_local_log(str(tmp_path / "db"), reducer_values("add"))
    assert [r.values for r in records][-4:] == [(10,), (11,), (11,), ()]
    assert [r.offset for r in records] == list(range(1, len(records) + 1))
    h = History()
    h.complete(h.invoke(0, "write", "a", 10), "ok", offset=records[-4].offset)
    h.complete(h.invoke(0, "write", "a", 11), "ok", offset=records[-3].offset)
    assert check(h, records).kinds() == {"duplicated"}
