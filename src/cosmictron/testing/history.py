"""A Jepsen-style history checker: did the cluster keep every promise a client saw?

Cluster mode (issue 19) promises: a write acknowledged is in the log exactly once; a read
never returns a value that was not committed; every node's log holds the same record at
the same offset. A fault test (``tests/cluster/test_history.py``) runs concurrent clients
against every node while it kills, freezes and restarts processes, and records each
operation here: its invocation (which client, which node, what value, when) and its
completion, one of

- ``ok``: the server answered success (a write's ``tx_offset``; a read's values and, when
  the server gives one, the offset it read at);
- ``fail``: the operation certainly had no effect (refused before it ran: a node that
  does not lead it, a connection refused, a 4xx);
- ``info``: the outcome is unknown (a timeout, a dropped connection, ``503
  cluster_unavailable`` after the write was sent): it may or may not be committed, and
  both are correct.

:func:`check` then compares the history with the *committed log*, the database's
JetStream stream read at the end (the authority on what was committed), and with each
node's local log. It knows nothing about leaders or followers: a read served by a
follower carries that follower's offset and is checked against the log's prefix at that
offset, exactly as a leader's read is, so the same checker works while only leaders serve
and once followers serve too.

The model: each write puts one unique integer *value* into the database (a reducer call
``add(value)`` appending a row; a retried or doubled call would append a second row and a
second record). Imports only the standard library and the log reader (``ledger.logread``,
``durability.record``) for :func:`read_local_log`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["write", "read"]
Status = Literal["ok", "fail", "info"]

ValuesOf = Callable[[str, Any], Sequence[int]]
"""``(reducer, args) -> the values the call writes``: how a log record maps to the model."""


@dataclass
class Op:
    """One client operation: its invocation, then (once :meth:`History.complete`) its result."""

    index: int
    process: int
    kind: Kind
    node: str
    invoked: float
    value: int | None = None
    """A write's value (None for a read)."""
    status: Status | None = None
    """None while in flight; a history still in flight at the end counts as ``info``."""
    completed: float | None = None
    offset: int | None = None
    """A write's acknowledged ``tx_offset``; a read's offset, when the server gave one."""
    read: tuple[int, ...] | None = None
    """A read's values, with their multiplicity (a doubled row shows twice)."""
    served_by: str = ""
    """The node that answered (a redirected call ends on another node than it began)."""
    error: str = ""


class History:
    """A thread-safe, append-only record of operations (clients call it concurrently)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.ops: list[Op] = []
        self._clock = clock
        self._lock = threading.Lock()

    def invoke(self, process: int, kind: Kind, node: str, value: int | None = None) -> Op:
        """Record that ``process`` starts an operation on ``node``; the op to complete."""
        with self._lock:
            op = Op(len(self.ops), process, kind, node, self._clock(), value)
            self.ops.append(op)
            return op

    def complete(
        self,
        op: Op,
        status: Status,
        *,
        offset: int | None = None,
        read: Iterable[int] | None = None,
        served_by: str = "",
        error: str = "",
    ) -> Op:
        """Record ``op``'s result (see the module doc for what each status promises)."""
        with self._lock:
            op.status = status
            op.completed = self._clock()
            op.offset = offset
            op.read = None if read is None else tuple(read)
            op.served_by = served_by or op.node
            op.error = error
        return op

    def counts(self) -> dict[str, int]:
        """``{"write ok": n, "write info": n, "read ok": n, ...}``: for the run's summary."""
        tally = Counter(f"{op.kind} {op.status or 'info'}" for op in self.ops)
        return dict(sorted(tally.items()))


@dataclass(frozen=True)
class LogRecord:
    """One record of a log: its offset, the hash of its bytes, the values it writes."""

    offset: int
    digest: bytes
    values: tuple[int, ...] = ()


@dataclass(frozen=True)
class Anomaly:
    """One broken promise. ``kind`` is one of :data:`ANOMALY_KINDS`."""

    kind: str
    detail: str


ANOMALY_KINDS = (
    "lost",  # an acknowledged write is not in the committed log
    "duplicated",  # a value is in the committed log (or a read) more than once
    "phantom",  # the committed log holds a value no client ever wrote
    "failed-committed",  # a write reported as certainly failed is in the committed log
    "ack-offset",  # an acknowledged write's tx_offset holds another record
    "dirty-read",  # a read returned a value the committed log does not hold
    "future-read",  # a read returned a value whose write began after the read ended
    "read-offset",  # a read's values are not the committed log's prefix at its offset
    "log-gap",  # the committed log's offsets are not 1, 2, 3, ...
    "node-log",  # a node's log differs from the committed log at an offset it vouched for
)


@dataclass
class Report:
    """What :func:`check` found: ``anomalies`` (empty: the history is valid) and figures."""

    anomalies: list[Anomaly] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def kinds(self) -> set[str]:
        return {anomaly.kind for anomaly in self.anomalies}

    def summary(self, limit: int = 20) -> str:
        """The stats and the first ``limit`` anomalies, one a line (for a test's failure)."""
        lines = [f"{key}: {value}" for key, value in self.stats.items()]
        lines += [f"{a.kind}: {a.detail}" for a in self.anomalies[:limit]]
        if len(self.anomalies) > limit:
            lines.append(f"... and {len(self.anomalies) - limit} more anomalies")
        return "\n".join(lines)


def check(
    history: History | Sequence[Op],
    log: Sequence[LogRecord],
    node_logs: Mapping[str, Sequence[LogRecord]] | None = None,
) -> Report:
    """Check ``history`` against the committed ``log`` and each node's log.

    Args:
        history: every operation the clients ran (in-flight ones count as ``info``).
        log: the committed log (the stream), in offset order.
        node_logs: each node's local log. A node's log must hold the committed record at
            every offset up to the first where it differs; past that point (a deposed
            leader's tail that was never acknowledged, set aside when it rejoins) it may
            differ, but none of its records may hold an acknowledged write there.

    Returns:
        The report; ``report.valid`` when no promise was broken.
    """
    ops = list(history.ops if isinstance(history, History) else history)
    report = Report()

    def flag(kind: str, detail: str) -> None:
        report.anomalies.append(Anomaly(kind, detail))

    writes = {op.value: op for op in ops if op.kind == "write" and op.value is not None}
    committed: Counter[int] = Counter()
    offset_of: dict[int, int] = {}
    by_offset: dict[int, LogRecord] = {}
    for expected, record in enumerate(log, start=1):
        if record.offset != expected:
            flag("log-gap", f"record {expected} of the log has offset {record.offset}")
        by_offset[record.offset] = record
        for value in record.values:
            committed[value] += 1
            offset_of.setdefault(value, record.offset)

    for value, times in sorted(committed.items()):
        write = writes.get(value)
        at = offset_of[value]
        if times > 1:
            flag("duplicated", f"value {value} is in the log {times} times")
        if write is None:
            flag("phantom", f"value {value} (offset {at}) was never written")
        elif write.status == "fail":
            flag(
                "failed-committed",
                f"value {value} is at offset {at} but its write failed certainly "
                f"({write.error or 'no error text'})",
            )
    for value, write in sorted(writes.items()):
        if write.status != "ok":
            continue
        if value not in committed:
            flag(
                "lost",
                f"value {value}: acknowledged at offset {write.offset} by {write.served_by}, "
                "not in the log",
            )
        elif write.offset is not None:
            stored = by_offset.get(write.offset)
            if stored is None or value not in stored.values:
                flag(
                    "ack-offset",
                    f"value {value}: acknowledged at offset {write.offset}, in the log at "
                    f"{offset_of[value]}",
                )

    prefix = _prefix_sets(log)
    for op in ops:
        if op.kind != "read" or op.status != "ok" or op.read is None:
            continue
        where = f"read #{op.index} on {op.served_by}"
        seen = Counter(op.read)
        for value, times in sorted(seen.items()):
            if times > 1:
                flag("duplicated", f"{where} returned value {value} {times} times")
            if value not in committed:
                flag("dirty-read", f"{where} returned value {value}, which was never committed")
            write = writes.get(value)
            if write is not None and op.completed is not None and write.invoked > op.completed:
                flag("future-read", f"{where} returned value {value}, written after it ended")
        if (
            op.offset is not None
            and 0 <= op.offset < len(prefix)
            and set(seen) != prefix[op.offset]
        ):
            missing = sorted(prefix[op.offset] - set(seen))[:5]
            extra = sorted(set(seen) - prefix[op.offset])[:5]
            flag(
                "read-offset",
                f"{where} at offset {op.offset}: lacks {missing}, has {extra} beyond the "
                "log's prefix",
            )

    acked = {write.value for write in writes.values() if write.status == "ok"}
    diverged: dict[str, int] = {}
    for node, records in sorted((node_logs or {}).items()):
        for position, record in enumerate(records, start=1):
            if record.offset != position:
                flag("node-log", f"{node}: record {position} has offset {record.offset}")
                break
            ours = by_offset.get(record.offset)
            if ours is not None and ours.digest == record.digest:
                continue
            # The node's log leaves the committed one here: only a tail nobody was told
            # is committed may do that (a deposed leader's, dropped when it rejoins).
            diverged[node] = record.offset
            for tail in records[position - 1 :]:
                held = sorted(set(tail.values) & acked)
                if held and any(offset_of.get(v) != tail.offset for v in held):
                    flag(
                        "node-log",
                        f"{node}: offset {tail.offset} holds acknowledged value(s) {held} "
                        "that the log holds elsewhere",
                    )
            break

    report.stats = {
        "operations": len(ops),
        **(history.counts() if isinstance(history, History) else {}),
        "log records": len(log),
        "values committed": len(committed),
        "nodes checked": len(node_logs or {}),
        "nodes with an unacknowledged tail": diverged,
    }
    return report


def _prefix_sets(log: Sequence[LogRecord]) -> list[set[int]]:
    """``prefix[n]``: the values committed at offsets ``<= n`` (``prefix[0]`` is empty)."""
    out: list[set[int]] = [set()]
    for record in log:
        out.append(out[-1] | set(record.values))
    return out


def records_from_payloads(
    payloads: Iterable[tuple[int, bytes]], values_of: ValuesOf
) -> list[LogRecord]:
    """``(offset, payload)`` pairs (a stream's messages, a log's frames) as log records.

    A transaction record's body names its reducer and arguments
    (``host/records.py``); ``values_of`` turns those into the model's values.
    """
    from cosmictron.durability.record import TX_RECORD_KIND, decode_payload

    out = []
    for offset, payload in payloads:
        kind, _, _, body = decode_payload(payload)
        values: Sequence[int] = ()
        if kind == TX_RECORD_KIND and isinstance(body, list) and len(body) > 4:
            values = values_of(str(body[3]), body[4])
        out.append(LogRecord(offset, hashlib.sha256(payload).digest(), tuple(values)))
    return out


def read_local_log(data_dir: str, values_of: ValuesOf) -> list[LogRecord]:
    """A database directory's local log (``<data_dir>/log``) as log records."""
    from cosmictron.ledger.logread import LogReader

    return records_from_payloads(((raw.seq, raw.payload) for raw in LogReader(data_dir)), values_of)


def reducer_values(reducer: str) -> ValuesOf:
    """The usual ``values_of``: a call of ``reducer`` writes its first argument."""

    def values_of(name: str, args: Any) -> Sequence[int]:
        if name != reducer:
            return ()
        first = args[0] if isinstance(args, list | tuple) and args else args
        return (int(first),) if isinstance(first, int) else ()

    return values_of
