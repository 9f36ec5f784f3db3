"""Semi-joins evaluated into key sets: how a join visibility filter runs.

A visibility filter that joins other tables becomes a ``SemiJoin`` in the plan
(``visibility.py``): "this row's key is among the keys that subplan returns". Its
subplan depends only on the reader, not on the row, so it runs once per execution of
the plan that holds it and becomes a ``KeySet`` (``evaluate_semijoins``); the predicate
is then compiled over the set. ``rows_by_key_set`` turns a small key set into index
lookups, since the planner could not know the set's size.

The subplan is run by the executor's ``run`` (passed in, so this module does not import
``execute.py``, which imports it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore
from cosmictron.errors import QueryTooCostly
from cosmictron.query.budget import Meter
from cosmictron.query.expressions import compile_expr
from cosmictron.query.plan import (
    Binary,
    Col,
    Expr,
    IsNull,
    KeySet,
    Node,
    Scan,
    SemiJoin,
    Unary,
    conjuncts,
)
from cosmictron.query.plan_shape import plan_width

Rows = Iterator[tuple[Any, ...]]
Run = Callable[[Node, Datastore, Meter], Rows]
"""The executor's entry for one node: the rows it produces (``execute._run``)."""


def evaluate_semijoins(expr: Expr, datastore: Datastore, meter: Meter, run: Run) -> Expr:
    """``expr`` with each ``SemiJoin`` evaluated into a ``KeySet`` over ``datastore``.

    A semi-join's subplan (a visibility filter's other tables, themselves filtered) runs
    once per execution of the plan that holds it, not once per row; an expression
    without one is returned as it is. Its rows examined are charged to ``meter`` (the
    reader's query pays for its filters; ``execute.UNMETERED`` for the database's own work) and
    its rows count against ``limits.query_rows_max``.
    """
    if isinstance(expr, SemiJoin):
        rows_max = limits.query_rows_max
        width = plan_width(expr.plan)
        values: set[tuple[Any, ...]] = set()
        for count, row in enumerate(run(expr.plan, datastore, meter), start=1):
            if count > rows_max:
                raise QueryTooCostly(
                    f"the visibility filter {expr.label!r} reads more than {rows_max} rows "
                    f"for this reader (limits.query_rows_max)"
                )
            key = row if width is None or len(row) == width else row[:width]
            if None not in key:
                values.add(key)
        keys = tuple(evaluate_semijoins(key, datastore, meter, run) for key in expr.keys)
        return KeySet(keys, frozenset(values), expr.label)
    if isinstance(expr, Binary):
        left = evaluate_semijoins(expr.left, datastore, meter, run)
        right = evaluate_semijoins(expr.right, datastore, meter, run)
        if left is expr.left and right is expr.right:
            return expr
        return replace(expr, left=left, right=right)
    if isinstance(expr, Unary | IsNull):
        operand = evaluate_semijoins(expr.operand, datastore, meter, run)
        return expr if operand is expr.operand else replace(expr, operand=operand)
    return expr  # visibility filters put semi-joins only under AND, OR and NOT


def compile_predicate(
    expr: Expr | None, datastore: Datastore, meter: Meter, run: Run
) -> Callable[[Any], Any] | None:
    """``expr`` compiled to a function of a row, its semi-joins evaluated first (None: none)."""
    if expr is None:
        return None
    return compile_expr(evaluate_semijoins(expr, datastore, meter, run), meter)


def rows_by_key_set(scan: Scan, predicate: Expr, datastore: Datastore) -> Rows | None:
    """The rows a join visibility filter can admit, found through an index.

    Its set is known only now (``evaluate_semijoins``), so the planner could not choose
    the index: when a conjunct is ``column IN <set>`` on a column with its own index
    (or the primary key) and the set is small next to the table, look each value up
    instead of scanning (a reader's messages in their rooms, not every message). The
    whole predicate still runs on the rows found. None: scan.
    """
    table = datastore.tables[scan.name]
    for conjunct in conjuncts(predicate):
        if not isinstance(conjunct, KeySet) or len(conjunct.keys) != 1:
            continue
        key = conjunct.keys[0]
        if not isinstance(key, Col) or len(conjunct.values) * 4 > len(table.rows):
            continue
        column = scan.table.columns[key.slot].name
        rows = table.rows
        if tuple(scan.table.primary_key) == (column,):
            return iter([rows[v[0]] for v in conjunct.values if v[0] in rows])
        for index in table.indexes:
            if tuple(index.schema.columns) == (column,):
                return iter([rows[k] for v in conjunct.values for k in index.row_keys(v[0])])
    return None
