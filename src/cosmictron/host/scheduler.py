"""Scheduled reducers: which row is due when (``ScheduleBook``) and the thread that runs them.

A table declared ``@table(scheduled="tick")`` with a ``scheduled_at: ScheduleAt`` column
is a list of timers: inserting a row schedules ``tick(ctx, row)``, deleting it cancels.
The design note is docs/design/scheduler.md; the rules, in short:

- **The next due time of every row is durable state, changed only by transactions.** The
  ``ScheduleBook`` maps each row of each scheduled table to its next due time. A
  transaction that changes it (an insert or delete in a scheduled table, a scheduled
  run) writes the new entries in its own record (the 8th element of a transaction
  body, ``records.py``), and snapshots carry the whole book. Replay therefore restores
  the book exactly as of the last record, with no clock and no module code involved.
- **A due time is consumed by exactly one committed transaction**: the run itself
  (which also advances or, for a one-shot, deletes the row), or, when the reducer
  raised, a ``__schedule_failed__`` record that does the same bookkeeping. A run and its
  bookkeeping commit together or not at all, so no crash can make a due time run twice.
- **Interval rows run on a fixed grid** anchored at the insert: ``insert + k·interval``.
  After a run at time ``now`` the next due time is the first grid point after ``now``,
  so runs missed while the server was down (or the scheduler was late) are coalesced
  into one run, never replayed N times.
- **One-shot rows** (``ScheduleAt.at``) are due at their time (a past time: at once) and
  are deleted in the transaction of their run.

Entries in the log are ``[table, row (wire form), next_due_us | None]``; ``None`` removes
the row's entry (deleted or finished). ``Scheduler`` is the background thread; it holds no
state of its own beyond "wake up", so stopping and starting it loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore import Datastore, TableChange
from cosmictron.datastore.schema import ModuleSchema
from cosmictron.host.clock import Clock
from cosmictron.values import ScheduleAt

logger = logging.getLogger(__name__)

SCHEDULE_FAILED = "__schedule_failed__"
"""The reducer name recorded when a scheduled reducer raised: the bookkeeping of its due
time (advance an interval, delete a one-shot) commits without the reducer's writes. Its
arguments are ``[table, reducer, error message]``."""


@dataclass(frozen=True, slots=True)
class Due:
    """One scheduled run: ``table``'s row with key ``key``, due at ``due_us``."""

    table: str
    key: Any
    due_us: int


@dataclass(frozen=True, slots=True)
class ScheduleUpdate:
    """A change to the book: ``row`` (canonical) is next due at ``next_due_us`` (None: gone)."""

    table: str
    key: Any
    row: tuple[Any, ...]
    next_due_us: int | None


def first_due_us(schedule: ScheduleAt, now_us: int) -> int:
    """When a row inserted at ``now_us`` first runs.

    >>> first_due_us(ScheduleAt("interval", 10), 100)
    110
    >>> first_due_us(ScheduleAt("at", 50), 100)
    50
    """
    if schedule.kind == "interval":
        return now_us + schedule.micros
    return schedule.micros


def next_due_us(due_us: int, interval_us: int, now_us: int) -> int:
    """The first point of the grid ``due_us + k·interval_us`` strictly after ``now_us``.

    This is what coalesces missed runs: a run at ``now_us`` consumes every grid point up
    to it.

    >>> next_due_us(100, 10, 100)
    110
    >>> next_due_us(100, 10, 135)
    140
    """
    assert interval_us > 0, "ScheduleAt refuses non-positive intervals"
    if now_us < due_us:
        return due_us + interval_us
    return due_us + interval_us * ((now_us - due_us) // interval_us + 1)


class ScheduleBook:
    """The next due time of every row of every scheduled table (host state, writer lock)."""

    def __init__(self) -> None:
        # table -> scheduled_at position; tables of the running module only.
        self._positions: dict[str, int] = {}
        # table -> row key -> (row, next due µs)
        self._entries: dict[str, dict[Any, tuple[tuple[Any, ...], int]]] = {}
        self.active = False
        """Whether the module has scheduled tables at all (the commit path's fast exit;
        an attribute, not a property, since every commit reads it)."""

    def use_schema(self, schema: ModuleSchema) -> None:
        """Track the scheduled tables of ``schema``; entries of other tables are dropped."""
        self._positions = {
            table.name: table.column_index("scheduled_at")
            for table in schema.tables
            if table.scheduled is not None
        }
        self._entries = {name: self._entries.get(name, {}) for name in self._positions}
        self.active = bool(self._positions)

    def entry(self, table: str, key: Any) -> tuple[tuple[Any, ...], int] | None:
        return self._entries.get(table, {}).get(key)

    def schedule_of(self, table: str, row: tuple[Any, ...]) -> ScheduleAt:
        value: ScheduleAt = row[self._positions[table]]
        return value

    def next_due(self) -> int | None:
        """The earliest due time of any row, or None when nothing is scheduled."""
        earliest = None
        for rows in self._entries.values():
            for _, due_us in rows.values():
                if earliest is None or due_us < earliest:
                    earliest = due_us
        return earliest

    def due(self, now_us: int) -> list[Due]:
        """Every run due at ``now_us``, earliest first (ties: by table, then insertion)."""
        found = [
            Due(table, key, due_us)
            for table, rows in self._entries.items()
            for key, (_, due_us) in rows.items()
            if due_us <= now_us
        ]
        found.sort(key=lambda due: due.due_us)
        return found

    def plan(
        self,
        changes: Iterable[TableChange],
        now_us: int,
        ran: Due | None,
    ) -> list[ScheduleUpdate]:
        """What a transaction at ``now_us`` does to the book (applied after its append).

        Deleted rows lose their entry. An inserted row gets a new first due time, unless
        it replaces a row with the same key and the same ``scheduled_at`` (an update of
        other columns keeps the schedule's phase). ``ran``, a run this transaction
        performs, moves its interval row to the next grid point after ``now_us``.
        """
        updates: dict[tuple[str, Any], ScheduleUpdate] = {}
        for change in changes:
            table = change.table
            position = self._positions.get(table.name)
            if position is None:
                continue
            for row in change.deletes:
                key = table.row_key(row)
                updates[table.name, key] = ScheduleUpdate(table.name, key, row, None)
            for row in change.inserts:
                key = table.row_key(row)
                existing = self.entry(table.name, key)
                if existing is not None and existing[0][position] == row[position]:
                    due_us = existing[1]
                else:
                    due_us = first_due_us(row[position], now_us)
                updates[table.name, key] = ScheduleUpdate(table.name, key, row, due_us)
        if ran is not None:
            self._plan_run(ran, now_us, updates)
        return list(updates.values())

    def _plan_run(
        self, ran: Due, now_us: int, updates: dict[tuple[str, Any], ScheduleUpdate]
    ) -> None:
        existing = self.entry(ran.table, ran.key)
        assert existing is not None, "a run is only started for a row in the book"
        schedule = self.schedule_of(ran.table, existing[0])
        changed = updates.get((ran.table, ran.key))
        if changed is not None and (
            changed.next_due_us is None or self.schedule_of(ran.table, changed.row) != schedule
        ):
            return  # the run deleted its row, or gave it a new schedule: that one stands
        row = existing[0] if changed is None else changed.row
        if schedule.kind == "interval":
            due_us = next_due_us(ran.due_us, schedule.micros, now_us)
            updates[ran.table, ran.key] = ScheduleUpdate(ran.table, ran.key, row, due_us)
        else:  # the host deletes a one-shot row in its run; this is the safety net
            updates[ran.table, ran.key] = ScheduleUpdate(ran.table, ran.key, row, None)

    def apply(self, updates: Iterable[ScheduleUpdate]) -> None:
        for update in updates:
            rows = self._entries.get(update.table)
            if rows is None:
                continue
            if update.next_due_us is None:
                rows.pop(update.key, None)
            else:
                rows[update.key] = (update.row, update.next_due_us)

    # -- log and snapshot forms ---------------------------------------------------------

    def encode(self, datastore: Datastore, updates: Iterable[ScheduleUpdate]) -> list[Any]:
        codecs = datastore.codecs
        return [[u.table, codecs[u.table].encode(u.row), u.next_due_us] for u in updates]

    def decode(self, datastore: Datastore, wire: list[Any]) -> list[ScheduleUpdate]:
        updates = []
        for table, row_wire, due_us in wire:
            row = datastore.codecs[table].decode(row_wire)
            key = datastore.tables[table].row_key(row)
            updates.append(ScheduleUpdate(table, key, row, due_us))
        return updates

    def snapshot(self, datastore: Datastore) -> list[Any]:
        """The whole book in log form, for a snapshot taken now."""
        return self.encode(
            datastore,
            (
                ScheduleUpdate(table, key, row, due_us)
                for table, rows in self._entries.items()
                for key, (row, due_us) in rows.items()
            ),
        )

    def reset(self) -> None:
        self._entries = {name: {} for name in self._positions}

    def reconcile(self, datastore: Datastore, now_us: int) -> None:
        """Make the book cover exactly the rows of the scheduled tables.

        Run after a module change (a migration may rewrite rows or make a table
        scheduled) and after replay (a snapshot from before scheduling existed holds no
        book). Rows that keep their key keep their due time; new ones get a first due
        time from ``now_us``. Deterministic in the datastore and ``now_us``, so replay
        of a module record (at its timestamp) rebuilds the same book.
        """
        for name, position in self._positions.items():
            table = datastore.tables[name]
            old = self._entries.get(name, {})
            self._entries[name] = {
                key: (row, old[key][1] if key in old else first_due_us(row[position], now_us))
                for key, row in table.rows.items()
            }


class Scheduler:
    """The background thread that runs due rows, one transaction each.

    It sleeps until the book's earliest due time or until ``wake()`` (called after a
    commit that changed the book, and by ``stop``). ``run_due(now_us)`` and
    ``next_due()`` are the database's: they take its writer lock, so this thread never
    touches the book unlocked. ``wait_idle`` lets tests (and ``ManualClock`` users) wait
    until everything due at the clock's current time has run.
    """

    def __init__(
        self,
        clock: Clock,
        next_due: Callable[[], int | None],
        run_due: Callable[[int], None],
        name: str,
    ) -> None:
        self._clock = clock
        self._next_due = next_due
        self._run_due = run_due
        self._wake = threading.Event()
        self._state = threading.Condition()
        self._stopping = False
        self._changed = True  # a pass is owed: something changed since the last one
        # After a complete pass that saw no change: idle until this due time (None: until
        # woken). A test's clock past it means a pass is owed, so not idle.
        self._idle = False
        self._idle_until_us: int | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Something changed (a schedule row, the module): look again now."""
        with self._state:
            self._changed = True
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread after its current run (if any); idempotent."""
        with self._state:
            self._stopping = True
            self._state.notify_all()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every run due at the clock's current time has committed.

        Returns False on timeout or when the scheduler stopped first.
        """
        now_us = self._clock.now_us()

        def idle() -> bool:
            if self._stopping:
                return True
            if self._changed or not self._idle:
                return False
            return self._idle_until_us is None or self._idle_until_us > now_us

        with self._state:
            return self._state.wait_for(idle, timeout_s) and not self._stopping

    def _loop(self) -> None:
        while True:
            self._wake.clear()
            with self._state:
                if self._stopping:
                    return
                self._changed = False
                self._idle = False
            now_us = self._clock.now_us()
            try:
                self._run_due(now_us)
                deadline_us = self._next_due()
            except Exception:
                # run_due logs a reducer's failure itself; reaching here is a host bug
                # (or the database closing under us). Never die: schedules must go on.
                logger.exception("the scheduler's pass at %d µs failed", now_us)
                deadline_us = None
            with self._state:
                if self._stopping:
                    return
                if not self._changed and (deadline_us is None or deadline_us > now_us):
                    self._idle = True
                    self._idle_until_us = deadline_us
                    self._state.notify_all()
            if deadline_us is not None and deadline_us <= now_us:
                continue  # more became due while running (a late clock); go again
            self._clock.wait_until(deadline_us, self._wake)
