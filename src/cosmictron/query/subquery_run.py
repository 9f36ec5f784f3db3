"""Running what a query holds besides tables: subqueries, FROM subqueries, compounds.

``run_subqueries`` (the ``Subqueries`` node) turns each ``Subquery`` in its plan's
expressions into an ``Evaluated`` function of the outer row, bound to this run's
snapshot and meter, then runs the plan. How a subquery runs:

* **Uncorrelated**: once, on first use (so a subquery in a branch never taken costs
  nothing), its answer kept for the run.
* **Correlated**: its plan with the outer values filled in (``params.bind``), run once
  per distinct outer value (memoised): an index on the correlation column makes each
  run a lookup, like an index nested-loop join.
* **Decorrelated** (``decorrelate.py``): when the correlation is by equalities, the
  hashed plan runs once and each outer row is a hash lookup (a semi- or anti-join, or
  a grouped aggregate). Used at once when the per-value plan would scan; when it can
  look the value up through an index, only after ``HASH_AFTER_KEYS`` distinct values
  (a handful of outer rows are cheaper as lookups than one pass over the inner table).

SQLite's answers, NULLs included: a scalar subquery is its first row's value, NULL for
no row (a row value's ``(a, b) = (SELECT x, y …)`` reads each column of that row);
``x IN (SELECT …)`` is FALSE over no rows (even for a NULL ``x``), else TRUE when ``x``
is found, else NULL when ``x`` is NULL or the rows hold a NULL, else FALSE;
``EXISTS`` is never NULL.

Every row a subquery examines is charged to the query's meter, so its budget bounds
the subqueries too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

from cosmictron.datastore import Datastore, TableSchema
from cosmictron.query.budget import Meter
from cosmictron.query.expressions import compile_expr
from cosmictron.query.functions import ROW
from cosmictron.query.params import bind
from cosmictron.query.plan import (
    Aggregate,
    Compound,
    Derived,
    Evaluated,
    Func,
    IndexScan,
    Node,
    Param,
    Project,
    Subqueries,
    Subquery,
    Values,
    plan_fields,
)
from cosmictron.query.plan_shape import plan_width
from cosmictron.query.render import render
from cosmictron.query.sizes import row_bytes

Rows = Iterator[tuple[Any, ...]]
Run = Callable[[Node, Datastore, Meter], Rows]

HASH_AFTER_KEYS = 16
"""Distinct outer values looked up one by one through an index before a decorrelatable
subquery switches to one hashed run of its inner side."""


def run_subqueries(node: Subqueries, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    return run(resolve(node.child, datastore, meter, run), datastore, meter)


def run_values(node: Values, datastore: Datastore, meter: Meter) -> Rows:
    return iter([()])


def run_derived(node: Derived, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    assert node.plan is not None
    return _trimmed(node.plan, datastore, meter, run)


def run_compound(node: Compound, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    left = _trimmed(node.left, datastore, meter, run, node.width)
    right = _trimmed(node.right, datastore, meter, run, node.width)
    if node.op == "UNION" and node.all:
        return chain(left, right)
    if node.op == "UNION":
        return _distinct(chain(left, right), meter)
    held = set()
    for row in right:
        if row not in held:
            meter.hold(row_bytes(row))
            held.add(row)
    keep = node.op == "INTERSECT"
    return (row for row in _distinct(left, meter) if (row in held) is keep)


def _distinct(rows: Rows, meter: Meter) -> Rows:
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        if row not in seen:
            meter.hold(row_bytes(row))
            seen.add(row)
            yield row


def _trimmed(
    plan: Node, datastore: Datastore, meter: Meter, run: Run, width: int | None = None
) -> Rows:
    """``plan``'s rows without hidden sort columns."""
    width = plan_width(plan) if width is None else width
    rows = run(plan, datastore, meter)
    if width is None:
        return rows
    return (row if len(row) == width else row[:width] for row in rows)


# -- expressions ---------------------------------------------------------------------


def resolve(value: Any, datastore: Datastore, meter: Meter, run: Run) -> Any:
    """``value`` (a plan or expression) with each ``Subquery`` made ``Evaluated``.

    Plans nested in it that run on their own (a FROM subquery, a subquery's plan) are
    left alone: their own ``Subqueries`` node resolves them when they run.
    """
    if isinstance(value, Subquery):
        return Evaluated(_evaluator(value, datastore, meter, run), render(value), value.type)
    if isinstance(value, Subqueries | Derived | TableSchema):
        return value
    if isinstance(value, tuple):
        items = tuple(resolve(item, datastore, meter, run) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    changes = {}
    for name in plan_fields(type(value)):
        old = getattr(value, name)
        new = resolve(old, datastore, meter, run)
        if new is not old:
            changes[name] = new
    return dataclasses.replace(value, **changes) if changes else value


def _evaluator(
    sub: Subquery, datastore: Datastore, meter: Meter, run: Run
) -> Callable[[tuple[Any, ...]], Any]:
    args = [compile_expr(resolve(arg, datastore, meter, run), meter) for arg in sub.args]
    operand = (
        None
        if sub.operand is None
        else compile_expr(resolve(sub.operand, datastore, meter, run), meter)
    )
    answer = _answers(sub, datastore, meter, run)
    kind, negated = sub.kind, sub.negated
    if not args:
        key: Callable[[tuple[Any, ...]], tuple[Any, ...]] = lambda row: ()  # noqa: E731
    elif len(args) == 1:
        only = args[0]

        def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return (only(row),)
    else:

        def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(arg(row) for arg in args)

    if kind != "in":
        return lambda row: answer(key(row))
    assert operand is not None

    def member(row: tuple[Any, ...]) -> Any:
        values, has_null = answer(key(row))
        if not values and not has_null:
            return negated  # over no rows: FALSE, even for NULL
        value = operand(row)
        if value is None:
            return None
        if value in values:
            return not negated
        return None if has_null else negated

    def row_member(row: tuple[Any, ...]) -> Any:
        """``(a, b) IN (SELECT x, y ...)``: TRUE when a row equals on every pair, else
        NULL when one might (every pair equal or NULL), else FALSE; FALSE over no rows."""
        values, with_nulls = answer(key(row))
        if not values and not with_nulls:
            return negated
        value = operand(row)
        if None not in value and value in values:
            return not negated
        candidates = chain(values, with_nulls) if None in value else with_nulls
        for other in candidates:
            if all(a is None or b is None or a == b for a, b in zip(value, other, strict=True)):
                return None
        return negated

    return row_member if row_width(sub) > 1 else member


def row_width(sub: Subquery) -> int:
    """How many columns an IN subquery compares: its row value's size, else 1."""
    operand = sub.operand
    if isinstance(operand, Func) and operand.name == ROW:
        return len(operand.args)
    return 1


def _answers(
    sub: Subquery, datastore: Datastore, meter: Meter, run: Run
) -> Callable[[tuple[Any, ...]], Any]:
    """A function from the outer values to the subquery's answer for them: a value
    (scalar), a bool (EXISTS), or ``(values, has_null)`` (IN)."""
    memo: dict[tuple[Any, ...], Any] = {}
    names = sub.names
    hashed_state: list[dict[tuple[Any, ...], Any] | None] = [None]
    threshold = 0 if sub.hashed is None or not _probes_index(sub.plan, names) else HASH_AFTER_KEYS
    empty = _empty_answer(sub)

    width = row_width(sub) if sub.kind != "scalar" else sub.column + 1

    def direct(outer: tuple[Any, ...]) -> Any:
        plan = sub.plan if not names else bind(sub.plan, dict(zip(names, outer, strict=True)))
        rows = _trimmed(plan, datastore, meter, run, width if sub.kind != "exists" else None)
        if sub.kind == "exists":
            return next(rows, None) is not None
        if sub.kind == "scalar":
            first = next(rows, None)
            return None if first is None else first[sub.column]
        if width > 1:
            return _row_answer(rows, meter)
        values = set()
        has_null = False
        for (value,) in rows:
            if value is None:
                has_null = True
            else:
                values.add(value)
        return frozenset(values), has_null

    def answer(outer: tuple[Any, ...]) -> Any:
        found = memo.get(outer, memo)
        if found is not memo:
            return found
        if sub.hashed is not None and len(memo) >= threshold:
            table = hashed_state[0]
            if table is None:
                table = hashed_state[0] = _hash(sub, datastore, meter, run)
            hashed_key = tuple(outer[names.index(n)] for n in sub.hashed[1])
            result = table.get(hashed_key, empty) if None not in hashed_key else empty
            if len(memo) < 4096:
                memo[outer] = result
            return result
        result = direct(outer)
        memo[outer] = result
        return result

    return answer


def _row_answer(rows: Rows, meter: Meter) -> tuple[frozenset[tuple[Any, ...]], tuple[Any, ...]]:
    """A row-value IN's answer: the rows without a NULL (a set), and those with one."""
    whole: set[tuple[Any, ...]] = set()
    partial: list[tuple[Any, ...]] = []
    for row in rows:
        if None in row:
            partial.append(row)
        elif row not in whole:
            whole.add(row)
        else:
            continue
        meter.hold(row_bytes(row))
    return frozenset(whole), tuple(partial)


def _empty_answer(sub: Subquery) -> Any:
    """The answer for an outer value no inner row matches (what the hash lacks)."""
    if sub.kind == "exists":
        return False
    if sub.kind == "in":
        return frozenset(), False
    if sub.hashed is None:
        return None
    return _empty_scalar(sub)


def _empty_scalar(sub: Subquery) -> Any:
    """A decorrelated scalar aggregate over no rows: COUNT is 0, the others NULL."""
    assert sub.hashed is not None
    plan = sub.hashed[0]
    plan = plan.child if isinstance(plan, Subqueries) else plan
    if not isinstance(plan, Project) or not isinstance(plan.child, Aggregate):
        return None  # a plain column: no row is NULL
    aggregate = plan.child
    keys = len(aggregate.groups)
    row = tuple([None] * keys) + tuple(
        {"COUNT": 0, "TOTAL": 0.0}.get(agg.func) for agg in aggregate.aggregates
    )
    return compile_expr(plan.exprs[keys])(row)


def _hash(
    sub: Subquery, datastore: Datastore, meter: Meter, run: Run
) -> dict[tuple[Any, ...], Any]:
    """One run of the hashed plan, as key -> answer."""
    assert sub.hashed is not None
    plan, key_names = sub.hashed
    count = len(key_names)
    table: dict[tuple[Any, ...], Any] = {}
    rows = _trimmed(plan, datastore, meter, run, count + row_width(sub))
    if sub.kind == "exists":
        for row in rows:
            key = row[:count]
            if None not in key:
                table[key] = True
        return table
    if sub.kind == "scalar":
        for row in rows:
            key = row[:count]
            if None not in key and key not in table:
                table[key] = row[count]
        return table
    width = row_width(sub)
    if width > 1:
        grouped: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for row in rows:
            key = row[:count]
            if None not in key:
                grouped.setdefault(key, []).append(row[count : count + width])
        return {key: _row_answer(iter(found), meter) for key, found in grouped.items()}
    building: dict[tuple[Any, ...], tuple[set[Any], list[bool]]] = {}
    for row in rows:
        key = row[:count]
        if None in key:
            continue
        entry = building.get(key)
        if entry is None:
            entry = building[key] = (set(), [False])
            meter.hold(row_bytes(key))
        value = row[count]
        if value is None:
            entry[1][0] = True
        else:
            entry[0].add(value)
    return {key: (frozenset(values), flag[0]) for key, (values, flag) in building.items()}


def _probes_index(plan: Node, names: tuple[str, ...]) -> bool:
    """Whether the per-value plan finds rows through an index keyed by an outer value."""
    stack: list[Any] = [plan]
    while stack:
        item = stack.pop()
        if isinstance(item, IndexScan) and any(
            isinstance(v, Param) and v.name in names for v in item.values
        ):
            return True
        if isinstance(item, tuple):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type | TableSchema):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return False


def strategy(sub: Subquery) -> str:
    """How ``sub`` runs, for EXPLAIN."""
    if not sub.names:
        return "once"
    outer = ", ".join(render(arg) for arg in sub.args)
    if sub.hashed is None:
        return f"per distinct ({outer})"
    keys = ", ".join(sub.hashed[1])
    if _probes_index(sub.plan, sub.names):
        return f"index lookup per ({outer}), then hashed on ({keys})"
    return f"hashed once on ({keys})"


__all__ = [
    "HASH_AFTER_KEYS",
    "resolve",
    "run_compound",
    "run_derived",
    "run_subqueries",
    "run_values",
    "strategy",
]
