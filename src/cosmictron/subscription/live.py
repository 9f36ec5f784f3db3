"""One subscribed query kept up to date: compiled once, then maintained by deltas.

A ``LiveQuery`` is what ``compile.compile_live`` makes of a subscribable SELECT, shared by
every subscriber of the same plan. It holds the pieces the other modules of this
package compute once, at compile time (the delta terms of ``terms.py``, the guards of
``guards.py`` and ``join_filters.py``), and the state a result needs between
transactions (a top-N's ``window.Window``; for a query with join filters, its whole
result). ``delta`` dispatches each transaction to the right way of computing its
change: the telescoping delta terms (``delta.py``), applied to the window for a top-N,
or a re-evaluation when a join filter's table changed (``join_filters.py``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore
from cosmictron.query import SelectStatement, execute, optimize
from cosmictron.query.budget import Meter
from cosmictron.query.cache import Converter, converter
from cosmictron.query.explain import explain
from cosmictron.query.expressions import compile_expr
from cosmictron.query.plan import Expr, Node
from cosmictron.subscription.delta import TxView, run_term, split
from cosmictron.subscription.guards import guards
from cosmictron.subscription.join_filters import (
    difference,
    filter_guards,
    filter_tables,
    join_filters,
    key_guard,
    key_values,
    resolved_terms,
)
from cosmictron.subscription.terms import Check, Row, Source, plan_term
from cosmictron.subscription.window import Window, order_key
from cosmictron.values import Identity


class LiveQuery:
    """A compiled subscribable query, shared by every subscriber with the same ``key``."""

    maintenance = "incremental"  # how it is kept up to date ("re-evaluated": a subclass)

    def __init__(
        self,
        key: Any,
        text: str,
        statement: SelectStatement,
        logical: Node,
        sources: list[Source],
        output: int,
        predicates: list[Expr],
        exprs: tuple[Expr, ...],
        sort_keys: tuple[tuple[int, bool], ...],
        limit: int | None,
    ) -> None:
        self.key = key
        self.text = text
        self.sources = sources
        self.output = output
        out = sources[output]
        self.table_name = out.name
        self.tables = frozenset(source.name for source in sources)
        self.columns = statement.columns
        found = tuple(converter(t) for t in statement.types)
        self.converters: tuple[Converter | None, ...] | None = (
            found if any(c is not None for c in found) else None
        )
        self._from_where = optimize(logical)
        self._out_slice = slice(out.base, out.base + out.width)
        self._sort_keys = sort_keys
        self._sort_exprs: tuple[Check, ...] = tuple(
            compile_expr(exprs[slot]) for slot, _ in sort_keys
        )
        self.limit = limit
        self._predicates = predicates
        # Join visibility filters (``SemiJoin``): the tables their subplans read, at any
        # depth. A transaction touching one re-evaluates the query and diffs it against
        # ``_result`` (see ``delta``); one touching only FROM tables runs the delta terms
        # with the semi-joins evaluated over the current state.
        joins = join_filters(predicates)
        self.filter_tables = filter_tables(joins)
        self._terms = (
            [] if joins else [plan_term(i, sources, predicates) for i in range(len(sources))]
        )
        self._result: Counter[Row] | None = Counter() if joins else None
        self.guards = guards(sources, predicates)
        self.guards.update(filter_guards(joins, self.tables))
        self.reevaluations = 0  # deltas computed by evaluating the whole query again
        self.reevaluated = False  # whether the last ``delta`` re-evaluated (the manager asks)
        self.key_guard = key_guard(sources, predicates)
        self._positions_of: dict[str, list[int]] = {}
        for position, source in enumerate(sources):
            self._positions_of.setdefault(source.name, []).append(position)
        self.subscribers: set[Any] = set()
        # What compiled it (text, params, sender, restricted): a hot-swap recompiles it.
        self.origin: tuple[str, dict[str, Any], Identity, bool] = (text, {}, Identity.zero(), False)
        self.evaluations = 0  # deltas computed (one per transaction touching its tables)
        self._window: Window | None = None

    @property
    def top_n(self) -> bool:
        return self.limit is not None

    def plan_lines(self) -> list[str]:
        """The EXPLAIN lines of the plan each evaluation of the whole query runs."""
        return explain(self._from_where)

    def key_values(self, datastore: Datastore) -> frozenset[Any]:
        """The values of ``key_guard``'s column a changed row must have to matter: the
        set its semi-join admits now (see ``join_filters.key_guard``)."""
        assert self.key_guard is not None
        return key_values(self.key_guard, datastore)

    @property
    def reads(self) -> frozenset[str]:
        """Every table whose change may change the result: FROM's and the filters'."""
        return self.tables | self.filter_tables

    def initial(
        self, datastore: Datastore, rows_max: int | None = None, meter: Meter | None = None
    ) -> list[Row]:
        """The current result (canonical rows); for a top-N, also (re)sets the window.

        ``meter`` charges the evaluation to a caller's budget (``query/budget.py``).
        """
        if rows_max is None:
            rows_max = limits.query_rows_max
        if self.limit is None:
            rows = execute(self._from_where, datastore, rows_max, meter)
            result = [row[self._out_slice] for row in rows]
            if self._result is not None:
                self._result = Counter(result)  # what the next re-evaluation diffs against
            return result
        self._refill(datastore, rows_max, meter)
        return self.current()

    def current(self) -> list[Row]:
        """A top-N's current window, in order (for a new subscriber sharing it)."""
        assert self._window is not None
        return self._window.rows()

    def delta(self, tx: TxView) -> tuple[list[Row], list[Row]]:
        """The (inserts, deletes) this transaction makes to the result (canonical rows)."""
        self.evaluations += 1
        self.reevaluated = False
        if self._result is not None and tx.tables & self.filter_tables:
            return self._reevaluate(tx.datastore)
        terms = self._terms
        if self._result is not None and not terms:
            # The filters' tables are unchanged: their semi-joins read the same rows
            # before and after this transaction, and since the last re-evaluation (a
            # change to them re-evaluates; one a guard skips cannot change them), so
            # they are evaluated once and kept until the next re-evaluation.
            terms = resolved_terms(self.sources, self._predicates, tx.datastore)
            self._terms = terms
        signed: Counter[Any] = Counter()
        for name in tx.tables:
            for position in self._positions_of.get(name, ()):
                run_term(terms[position], self.sources, tx, signed, self._entry)
        if self.limit is not None:
            assert self._window is not None
            return self._window.apply(signed, lambda: self._entries(tx.datastore))
        if self._result is not None:
            self._result.update(signed)
            self._result = +self._result
        return split(signed)

    def _reevaluate(self, datastore: Datastore) -> tuple[list[Row], list[Row]]:
        """The delta as the difference of the whole result after and before.

        A change to a table a join filter reads can reveal or hide any number of rows
        (a membership admits a whole room's messages), so the query is evaluated again
        and compared with the result kept from the last transaction: the cost of such a
        transaction is one evaluation of the query per distinct live query it wakes.
        """
        self.reevaluations += 1
        self.reevaluated = True
        self._terms = []  # the semi-joins' sets may have changed: evaluate them again
        if self.limit is not None:
            before = Counter(self._window.rows() if self._window is not None else ())
            self._refill(datastore)
            assert self._window is not None
            return difference(self._window.rows(), before)
        assert self._result is not None
        before = self._result
        rows = execute(self._from_where, datastore, limits.query_rows_max)
        after = Counter(row[self._out_slice] for row in rows)
        self._result = after
        return difference(after, before)

    def _entry(self, full: Any) -> Any:
        row = tuple(full[self._out_slice])
        if self.limit is None:
            return row
        values = tuple(function(full) for function in self._sort_exprs)
        return (order_key(values, self._sort_keys, row), row)

    def _entries(
        self, datastore: Datastore, rows_max: int | None = None, meter: Meter | None = None
    ) -> list[Any]:
        """Every sort entry of the result now (a top-N's whole query, evaluated)."""
        if rows_max is None:
            rows_max = limits.query_rows_max
        rows = execute(self._from_where, datastore, rows_max, meter)
        return [self._entry(row) for row in rows]

    def _refill(
        self, datastore: Datastore, rows_max: int | None = None, meter: Meter | None = None
    ) -> None:
        assert self.limit is not None
        if self._window is None:
            self._window = Window(self.limit)
        self._window.fill(self._entries(datastore, rows_max, meter))
