"""A subscribed query kept up to date by running it again: the general case.

``LiveQuery`` maintains the subscribable core (whole rows of one table over inner joins
and filters, an optional top-N) by delta terms. Any other query ``db.sql`` accepts
(subqueries, FROM subqueries and CTEs, compound selects, aggregates and GROUP BY,
DISTINCT, column lists and expressions, LEFT joins, OFFSET) is a ``ReevaluatedQuery``:
after a transaction that changes a table it reads (at any depth, subqueries and
visibility filters included), it is evaluated again on the current state and compared
with the result kept from the last time; the difference is the update. A transaction
that touches none of its tables costs it nothing (the manager's index wakes it only
for those). Each evaluation runs under the writer lock, so it is bounded by
``limits.subscription_reevaluation_rows_max`` rows examined; past it the query's
subscriptions end with an error naming the limit.

Rows are delivered under the name of the one table whose whole rows the query returns
(``SELECT t.* ... WHERE t.id IN (SELECT ...)``), else under the query's own text, with
the query's own columns (``result_shape.QueryResultName``).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore
from cosmictron.query import SelectStatement, execute, optimize
from cosmictron.query.budget import Meter, QueryBudget
from cosmictron.query.cache import Converter, converter
from cosmictron.query.execute import plan_tables
from cosmictron.query.explain import explain
from cosmictron.query.plan import (
    Col,
    Derived,
    Filter,
    Join,
    Limit,
    Node,
    Project,
    Scan,
    Sort,
    Subqueries,
)
from cosmictron.subscription.delta import TxView
from cosmictron.subscription.join_filters import difference
from cosmictron.subscription.live import LiveQuery
from cosmictron.subscription.result_shape import QueryResultName
from cosmictron.subscription.terms import Row
from cosmictron.values import Identity


def reevaluation_budget() -> QueryBudget:
    """The budget of one re-evaluation (read when it runs, so a test may lower it)."""
    return QueryBudget(
        time_s=float("inf"),
        rows_examined_max=limits.subscription_reevaluation_rows_max,
        result_bytes_max=sys.maxsize,
        held_bytes_max=sys.maxsize,
        origin="limits.subscription_reevaluation_rows_max",
    )


class ReevaluatedQuery(LiveQuery):
    """A subscribed query maintained by evaluating it again.

    A ``LiveQuery`` to the manager, fan-out and index (the same attributes and methods),
    but none of its delta machinery: ``LiveQuery.__init__`` is deliberately not called.
    """

    maintenance = "re-evaluated"

    def __init__(self, key: Any, text: str, statement: SelectStatement, why: str) -> None:
        self.key = key
        self.text = text
        self.why = why
        self.columns = statement.columns
        found = tuple(converter(t) for t in statement.types)
        self.converters: tuple[Converter | None, ...] | None = (
            found if any(c is not None for c in found) else None
        )
        self._plan = optimize(statement.plan)
        self.tables = frozenset(plan_tables(self._plan))
        self.filter_tables: frozenset[str] = frozenset()
        self.table_name: str = _whole_rows_of(statement.plan) or QueryResultName(
            text, statement.columns, statement.types
        )
        self.limit: int | None = None
        self.guards: dict[str, Any] = {}
        self.key_guard = None
        self.subscribers: set[Any] = set()
        self.origin: tuple[str, dict[str, Any], Identity, bool] = (text, {}, Identity.zero(), False)
        self.evaluations = 0
        self.reevaluations = 0
        self.reevaluated = False
        self._result: Counter[Row] = Counter()

    @property
    def top_n(self) -> bool:
        return False

    @property
    def reads(self) -> frozenset[str]:
        return self.tables

    def plan_lines(self) -> list[str]:
        return explain(self._plan)

    def key_values(self, datastore: Datastore) -> frozenset[Any]:
        raise AssertionError("a re-evaluated query has no key guard")

    def initial(
        self, datastore: Datastore, rows_max: int | None = None, meter: Meter | None = None
    ) -> list[Row]:
        if rows_max is None:
            rows_max = limits.query_rows_max
        rows = execute(self._plan, datastore, rows_max, meter)
        self._result = Counter(rows)
        return rows

    def current(self) -> list[Row]:
        return list(self._result.elements())

    def delta(self, tx: TxView) -> tuple[list[Row], list[Row]]:
        """The difference between the result now and the one kept (and keep the new one)."""
        self.evaluations += 1
        self.reevaluations += 1
        self.reevaluated = False  # nothing for the manager's key index to refresh
        rows = execute(
            self._plan, tx.datastore, limits.query_rows_max, reevaluation_budget().start()
        )
        after = Counter(rows)
        before, self._result = self._result, after
        return difference(after, before)


def _whole_rows_of(plan: Node) -> str | None:
    """The table whose whole rows (and nothing else) ``plan`` returns, if one does."""
    while isinstance(plan, Subqueries | Limit | Sort):
        plan = plan.child
    if not isinstance(plan, Project) or plan.width != len(plan.exprs):
        return None
    source: Node = plan.child
    while isinstance(source, Filter):
        source = source.child
    scans: list[Scan] = []
    while isinstance(source, Join):
        if not isinstance(source.right, Scan):
            return None
        scans.append(source.right)
        source = source.left
    if not isinstance(source, Scan):
        return None
    scans.append(source)
    for scan in scans:
        if isinstance(scan, Derived):
            continue
        slots = [e.slot if isinstance(e, Col) else None for e in plan.exprs]
        if slots == list(range(scan.base, scan.base + len(scan.table.columns))):
            return scan.name
    return None
