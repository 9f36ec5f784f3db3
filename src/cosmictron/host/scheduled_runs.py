"""Scheduled runs: the scheduler thread's two questions, answered for one database.

``scheduler.py`` keeps the schedule book and the thread, and knows nothing of databases;
this module is what the thread calls back into: when is the next row due
(``next_scheduled_us``), and run what is due now (``run_due``), each row's reducer as its
own transaction through ``transactions.transact``. See docs/design/scheduler.md.

Functions over the ``DatabaseCore``, as in ``transactions.py``, rather than a class:
``recovery.open_core`` hands them to the core, which gives them to its ``Scheduler`` as
callbacks.
"""

from __future__ import annotations

from cosmictron.errors import ReducerFailed, ResourceExhausted
from cosmictron.host.core import DatabaseCore
from cosmictron.host.scheduler import SCHEDULE_FAILED, Due
from cosmictron.host.transactions import transact
from cosmictron.module import ReducerContext


def next_scheduled_us(core: DatabaseCore) -> int | None:
    """When the next scheduled row is due (µs), or None: nothing is, or the database closed."""
    with core.lock:
        return None if core.closed else core.book.next_due()


def run_due(core: DatabaseCore, now_us: int) -> None:
    """The scheduler's pass: run every row due at ``now_us``, one transaction each."""
    with core.lock:
        if core.closed:
            return
        due = core.book.due(now_us)
    for item in due:
        offset = _run_scheduled(core, item)
        if offset is not None:
            core.persistence.wait_durable(offset)


def _run_scheduled(core: DatabaseCore, due: Due) -> int | None:
    """Run one due row's reducer; on failure, commit only its bookkeeping.

    Returns the offset of the transaction that consumed the due time, or None when
    the row was cancelled or already ran meanwhile.
    """
    with core.lock:
        entry = core.book.entry(due.table, due.key)
        if core.closed or entry is None or entry[1] != due.due_us:
            return None
        module = core.module
        table_schema = module.schema.table(due.table)
        assert table_schema is not None and table_schema.scheduled is not None
        reducer = table_schema.scheduled
        binding = module.reducers[reducer]
        table = core.datastore.tables[due.table]
        one_shot = core.book.schedule_of(due.table, entry[0]).kind == "at"
        values, wire_args = binding.bind((module.rows[due.table].to_object(entry[0]),), {})
        function = binding.function

        def finish_one_shot() -> None:
            tx = core.scope.tx
            assert tx is not None, "runs inside transact"
            if one_shot and due.key in table.rows:
                tx.delete(table, due.key)

        def run(ctx: ReducerContext) -> None:
            function(ctx, *values)
            finish_one_shot()

        try:
            _, offset, _ = transact(core, reducer, run, wire_args, core.identity, None, due)
        except (ReducerFailed, ResourceExhausted) as exc:
            # Logged by transact. The due time is consumed all the same, or the
            # scheduler would run it again at once, forever.
            _, offset, _ = transact(
                core,
                SCHEDULE_FAILED,
                lambda ctx: finish_one_shot(),
                [due.table, reducer, str(exc)],
                core.identity,
                None,
                due,
            )
        return offset
