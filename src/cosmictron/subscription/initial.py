"""A new subscription's initial rows: evaluated on a snapshot, off the writer lock.

The manager evaluates a new subscription's queries on a snapshot of the tables they
read (``Datastore.snapshot``), off the writer lock, under the caller's query budget;
then, under the lock, registers them if no table of the snapshot changed meanwhile
(``unchanged``), else evaluates again. After ``subscription_snapshot_attempts_max``
tries it evaluates under the lock, with the budget capped by ``locked_meter``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore
from cosmictron.query.budget import Meter, QueryBudget
from cosmictron.subscription.live import LiveQuery
from cosmictron.subscription.terms import Row


def evaluate(
    compiled: list[LiveQuery], datastore: Datastore, rows_max: int, meter: Meter
) -> dict[Any, list[Row]]:
    """Each distinct query's current rows over ``datastore`` (a top-N also sets its
    window: only on a query not registered yet, which nobody else reads)."""
    rows: dict[Any, list[Row]] = {}
    for query in compiled:
        if query.key not in rows:
            rows[query.key] = query.initial(datastore, rows_max, meter)
    return rows


def unchanged(snapshot: Datastore, datastore: Datastore) -> bool:
    """Whether no table of ``snapshot`` was written since it was taken: a write to a
    shared table gives the table a new row dict first (``Table.share``)."""
    if snapshot.schema is not datastore.schema:
        return False
    live = datastore.tables
    for name, view in snapshot.tables.items():
        table = live.get(name)
        if table is None or table.rows is not view.rows:
            return False
    return True


def locked_meter(budget: QueryBudget, meter: Meter) -> Meter:
    """What remains of ``meter``'s budget, capped at ``subscription_locked_time_s_max``
    seconds: the most an initial evaluation may hold the writer lock."""
    left_s = max(meter.deadline - time.monotonic(), 0.0)
    capped = replace(  # the byte limits stay the caller's
        budget,
        time_s=min(left_s, limits.subscription_locked_time_s_max),
        rows_examined_max=max(meter.rows_examined_max - meter.examined, 0),
        origin=(
            f"{budget.origin}; its tables kept changing, so it ran under the writer lock, "
            f"which it may hold for at most limits.subscription_locked_time_s_max "
            f"({limits.subscription_locked_time_s_max:g} s)"
        ),
    )
    return capped.start()
