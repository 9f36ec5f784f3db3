"""Cross-database calls, the state half: a database's outbox and its inbox marks.

``ctx.call_remote(database, reducer, *args)`` stages an outbox entry in the running
transaction; the entry commits with the transaction or not at all. The relay
(``remote_relay.py``) later delivers it, and the target applies it together with an
inbox mark (the source's high-water sequence) in one transaction, so a redelivery is
recognised and skipped. The design note is docs/design/remote-calls.md.

Like the schedule book (``scheduler.py``), this state is not a table: it changes only
inside transactions, each transaction that changes it carries the changes in its record
(the optional 9th element of a transaction body, ``records.py``) and snapshots carry the
whole book (state key ``"remote"``), so replay rebuilds it exactly, without module code.
A record's operations, in log form:

- ``["out", seq, database, reducer, args]``: a call was recorded (the caller's
  transaction); ``seq`` counts up from 1 per source database.
- ``["try", seq, attempts, error]``: a delivery failed; it will be tried again.
- ``["fail", seq, attempts, error]``: the last allowed delivery failed; the entry is kept
  (at most ``limits.remote_calls_failed_kept_max``) and never delivered again.
- ``["done", seq]``: the target applied it (or had applied it already); the entry goes.
- ``["in", source, seq]``: this database applied ``source``'s call ``seq`` (``source`` is
  the calling database's identity, hex); written in the same record as the call's effect.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosmictron import limits
from cosmictron.errors import InvalidRequest


@dataclass(slots=True)
class OutboxEntry:
    """One recorded call: where it goes, and how its deliveries went so far."""

    seq: int
    database: str
    reducer: str
    args: list[Any]
    offset: int
    """The offset of the transaction that recorded it (the relay waits for it to be durable)."""
    attempts: int = 0
    error: str | None = None
    failed: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "database": self.database,
            "reducer": self.reducer,
            "args": list(self.args),
            "tx_offset": self.offset,
            "status": "failed" if self.failed else "pending",
            "attempts": self.attempts,
            "error": self.error,
        }


_PLAIN = (int, float, str, bytes, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Arguments travel as plain values (what a JSON or msgpack call carries)."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_plain(item, where)
        return
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        for item in value.values():
            _check_plain(item, where)
        return
    raise InvalidRequest(
        f"{where}: argument {value!r} is a {type(value).__name__}; call_remote takes plain "
        "values (int, float, str, bytes, bool, None, lists and dicts of them), as an HTTP "
        "call does"
    )


class RemoteBook:
    """The outbox (pending and failed calls) and the inbox high-water marks.

    Changed only under the writer lock: ``stage`` while a transaction runs, then
    ``committed`` once its record is appended (or ``discard`` when it rolls back).
    ``wake`` is set by the relay that serves this database and called after a commit
    that recorded calls.
    """

    __slots__ = ("_failed_kept", "inbox", "next_seq", "outbox", "staged", "wake")

    def __init__(self, failed_kept: int | None = None) -> None:
        self.next_seq = 1
        self.outbox: OrderedDict[int, OutboxEntry] = OrderedDict()
        self.inbox: dict[str, int] = {}
        self.staged: list[list[Any]] = []
        self.wake: Callable[[], None] | None = None
        self._failed_kept = failed_kept

    # -- in a transaction ---------------------------------------------------------------

    def stage_call(self, database: str, reducer: str, args: tuple[Any, ...]) -> int:
        """Record a call in the running transaction; return its sequence number."""
        if not isinstance(database, str) or not database:
            raise InvalidRequest("call_remote: the database must be a non-empty name")
        if not isinstance(reducer, str) or not reducer:
            raise InvalidRequest("call_remote: the reducer must be a non-empty name")
        outs = sum(1 for op in self.staged if op[0] == "out")
        if outs >= limits.remote_calls_per_tx_max:
            raise InvalidRequest(
                f"call_remote: one transaction may record at most "
                f"{limits.remote_calls_per_tx_max} calls (limits.remote_calls_per_tx_max)"
            )
        _check_plain(list(args), f"call_remote({database!r}, {reducer!r})")
        seq = self.next_seq + outs
        self.staged.append(["out", seq, database, reducer, list(args)])
        return seq

    def stage(self, op: list[Any]) -> None:
        """Stage a host operation (an inbox mark, a settlement) in this transaction."""
        self.staged.append(op)

    def take_staged(self) -> list[Any] | None:
        """What this transaction's record carries (None when nothing was staged)."""
        return list(self.staged) if self.staged else None

    def discard(self) -> None:
        """The transaction rolled back: nothing it staged happened."""
        self.staged.clear()

    def committed(self, offset: int) -> None:
        """The transaction's record was appended at ``offset``: apply what it staged."""
        ops, self.staged = self.staged, []
        self.apply(ops, offset)
        if self.wake is not None and any(op[0] == "out" for op in ops):
            self.wake()

    # -- the book itself ----------------------------------------------------------------

    def apply(self, ops: list[Any], offset: int) -> None:
        """Apply one record's operations (at commit, and again on replay)."""
        for op in ops:
            kind = op[0]
            if kind == "out":
                _, seq, database, reducer, args = op
                self.outbox[seq] = OutboxEntry(seq, database, reducer, list(args), offset)
                self.next_seq = max(self.next_seq, seq + 1)
            elif kind == "in":
                _, source, seq = op
                if seq > self.inbox.get(source, 0):
                    self.inbox[source] = seq
            else:
                entry = self.outbox.get(op[1])
                if entry is None:
                    continue  # already settled (a settlement raced a redelivery)
                if kind == "done":
                    del self.outbox[op[1]]
                elif kind in ("try", "fail"):
                    entry.attempts, entry.error = op[2], op[3]
                    if kind == "fail":
                        entry.failed = True
                        self._forget_old_failures()

    def _forget_old_failures(self) -> None:
        kept = (
            self._failed_kept
            if self._failed_kept is not None
            else limits.remote_calls_failed_kept_max
        )
        failed = [seq for seq, entry in self.outbox.items() if entry.failed]
        for seq in failed[: max(0, len(failed) - kept)]:
            del self.outbox[seq]

    def pending(self) -> list[OutboxEntry]:
        """The entries still to deliver, in sequence order."""
        return [entry for entry in self.outbox.values() if not entry.failed]

    def applied_up_to(self, source: str) -> int:
        """The highest sequence of ``source``'s calls this database has applied."""
        return self.inbox.get(source, 0)

    def describe(self) -> list[dict[str, Any]]:
        return [entry.describe() for entry in self.outbox.values()]

    # -- snapshots ----------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        """The snapshot form (None when the database never used remote calls)."""
        if self.next_seq == 1 and not self.inbox:
            return None
        return {
            "next_seq": self.next_seq,
            "outbox": [
                [e.seq, e.database, e.reducer, e.args, e.offset, e.attempts, e.error, e.failed]
                for e in self.outbox.values()
            ],
            "inbox": [[source, seq] for source, seq in self.inbox.items()],
        }

    def load(self, state: Any) -> None:
        """Restore from a snapshot's ``"remote"`` (absent when unused or older)."""
        self.outbox.clear()
        self.inbox.clear()
        self.next_seq = 1
        if not state:
            return
        self.next_seq = int(state["next_seq"])
        for seq, database, reducer, args, offset, attempts, error, failed in state["outbox"]:
            self.outbox[seq] = OutboxEntry(
                seq, database, reducer, list(args), offset, attempts, error, bool(failed)
            )
        for source, seq in state["inbox"]:
            self.inbox[source] = seq
