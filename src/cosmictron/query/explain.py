"""EXPLAIN: a plan as lines of text, one per node, in data-flow order.

Inputs come before the node that consumes them, so the first line is where rows start
(``Scan item``) and the last is what the caller gets; each line names the algorithm and
its arguments (index, lookup values, join keys), which is what tests assert on.

A ``JoinGroup`` (inner joins ordered by cost, ``join_order.py``) is shown as the plan it
runs, in the order chosen for the tables' current sizes, followed by a ``JoinOrder``
line naming the tables in that order with the estimated rows after each step. The
sizes come from the datastore when there is one (``explain_statement``, what ``EXPLAIN``
through ``Database.sql`` uses); without one every table is assumed to hold
``statistics.GUESSED_ROWS`` rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cosmictron.datastore import Datastore
from cosmictron.query.join_order import estimate_text, plan_group
from cosmictron.query.plan import (
    Aggregate,
    Compound,
    Derived,
    Distinct,
    Expr,
    Filter,
    HashJoin,
    IndexNestedLoopJoin,
    IndexScan,
    Join,
    JoinGroup,
    Limit,
    NestedLoopJoin,
    Node,
    Project,
    Recursive,
    Scan,
    SemiJoin,
    Sort,
    Subqueries,
    Subquery,
    Values,
    Working,
    children,
    node_children,
)
from cosmictron.query.render import literal, render
from cosmictron.query.statistics import GUESS, GUESSED_ROWS, Statistics, datastore_statistics
from cosmictron.query.subquery_run import strategy


def explain_statement(statement: Any, datastore: Datastore | None) -> list[str]:
    """A statement's EXPLAIN lines, join orders chosen for ``datastore``'s table sizes."""
    plan = getattr(statement, "plan", None)
    if plan is None or datastore is None:
        lines: list[str] = statement.explain()
        return lines
    return explain(plan, datastore_statistics(datastore))


def explain(node: Node, stats: Statistics | None = None) -> list[str]:
    """One line per node, inputs before the node that consumes them (data-flow order).

    >>> from cosmictron.datastore import ColumnSchema, TableSchema
    >>> from cosmictron.datastore.types import I64
    >>> item = TableSchema("item", (ColumnSchema("id", I64),), ("id",))
    >>> from cosmictron.query.plan import Binary, Col, Const
    >>> explain(Filter(Scan(item, "item"), Binary(">", Col(0, "id"), Const(3))))
    ['Scan item', 'Filter (id > 3)']
    """
    lines: list[str] = []
    if isinstance(node, Derived) and node.plan is not None:
        lines.extend(f"  {line}" for line in explain(node.plan, stats))
    if isinstance(node, Recursive):
        lines.extend(f"  {line}" for line in explain(node.base, stats))
        lines.extend(f"  {line}" for line in explain(node.step, stats))
        lines.append(describe(node))
        return lines
    if isinstance(node, Compound):
        lines.extend(f"  {line}" for line in explain(node.left, stats))
        lines.extend(f"  {line}" for line in explain(node.right, stats))
        lines.append(describe(node))
        return lines
    if isinstance(node, Subqueries):
        # Each subquery: how it runs, then its plan, indented; then the plan holding it.
        for sub in subqueries_of(node.child):
            lines.append(f"  Subquery {sub.kind.upper()} {strategy(sub)}: {sub.label}")
            lines.extend(f"    {line}" for line in explain(sub.plan, stats))
            if sub.hashed is not None and sub.names:
                lines.append("    hashed form:")
                lines.extend(f"      {line}" for line in explain(sub.hashed[0], stats))
        return [*lines, *explain(node.child, stats)]
    if isinstance(node, JoinGroup):
        return _group(node, stats)
    if isinstance(node, IndexNestedLoopJoin):
        lines.extend(explain(node.left, stats))
    else:
        for child in node_children(node):
            lines.extend(explain(child, stats))
    for semijoin in _semijoins(node):
        # A visibility filter's subplan, evaluated once per execution, indented under it.
        lines.extend(f"  {line}" for line in explain(semijoin.plan, stats))
    lines.append(describe(node))
    return lines


def _group(node: JoinGroup, stats: Statistics | None) -> list[str]:
    planned = plan_group(node, stats or GUESS, remember=stats is not None)
    lines = explain(planned.plan, stats)
    steps = []
    for number, rows in zip(planned.order, planned.steps, strict=True):
        relation = node.relations[number]
        scan = relation.child if isinstance(relation, Filter) else relation
        assert isinstance(scan, Scan)
        steps.append(f"{scan.alias} ({estimate_text(rows)} rows)")
    guessed = "" if stats is not None else f" [sizes guessed: {GUESSED_ROWS} rows a table]"
    lines.append("JoinOrder " + " -> ".join(steps) + guessed)
    return lines


def _semijoins(node: Node) -> list[SemiJoin]:
    found: list[SemiJoin] = []

    def walk(expr: Expr | None) -> None:
        if isinstance(expr, SemiJoin):
            found.append(expr)
        elif expr is not None:
            for child in children(expr):
                walk(child)

    for name in ("predicate", "condition", "residual", "inner_filter"):
        walk(getattr(node, name, None))
    return found


def subqueries_of(value: object) -> list[Subquery]:
    """The subqueries in a plan's expressions, not those of the plans nested in them."""
    found: list[Subquery] = []
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Subquery):
            found.append(item)
            stack.extend(children(item))
        elif isinstance(item, Subqueries | Derived):
            continue
        elif isinstance(item, tuple):
            stack.extend(reversed(item))
        elif dataclasses.is_dataclass(item) and type(item).__module__.startswith(
            "cosmictron.query.plan"
        ):
            stack.extend(reversed([getattr(item, f.name) for f in dataclasses.fields(item)]))
    return found


def _table(node: Scan | IndexScan) -> str:
    return node.name if node.alias == node.name else f"{node.name} AS {node.alias}"


def describe(node: Node) -> str:
    """The one-line EXPLAIN text of one node."""
    if isinstance(node, Derived):
        return f"Derived {node.alias}"
    if isinstance(node, Values):
        return "Values (one row)"
    if isinstance(node, Recursive):
        bound = "" if node.limit is None else f" LIMIT {node.limit}"
        bound += f" OFFSET {node.offset}" if node.offset else ""
        kind = "UNION ALL" if node.all else "UNION"
        how = "initial rows, then the step per round"
        if node.queue:
            how = "a queue of rows taken first in, first out, the step per row"
        if node.order:
            terms = ", ".join(
                f"{position + 1}{' DESC' if descending else ''}"
                for position, descending, _ in node.order
            )
            how = f"a queue of rows taken by ORDER BY {terms}, the step per row"
        return f"RecursiveCTE {node.name} ({kind}: {how}){bound}"
    if isinstance(node, Working):
        return "WorkingRows (the rows the last round added, or the row taken)"
    if isinstance(node, Compound):
        return f"Compound {node.op}{' ALL' if node.all else ''}"
    if isinstance(node, Subqueries):
        return "Subqueries"
    if isinstance(node, Scan):
        return f"Scan {_table(node)}"
    if isinstance(node, IndexScan):
        return f"IndexScan {_table(node)} USING {node.index or 'primary_key'} ({_lookup(node)})"
    if isinstance(node, Filter):
        return f"Filter {render(node.predicate)}"
    if isinstance(node, Join | NestedLoopJoin):
        condition = "" if node.condition is None else f" ON {render(node.condition)}"
        name = "Join" if isinstance(node, Join) else "NestedLoopJoin"
        return f"{name} {node.kind}{condition}"
    if isinstance(node, HashJoin):
        pairs = [
            f"{render(left)} = {render(right)}"
            for left, right in zip(node.left_keys, node.right_keys, strict=True)
        ]
        residual = "" if node.residual is None else f" AND {render(node.residual)}"
        return f"HashJoin {node.kind} ON {' AND '.join(pairs)}{residual}"
    if isinstance(node, IndexNestedLoopJoin):
        extra = [render(e) for e in (node.inner_filter, node.residual) if e is not None]
        residual = "".join(f" AND {text}" for text in extra)
        return (
            f"IndexNestedLoopJoin {node.kind} {_table(node.inner)} USING "
            f"{node.index or 'primary_key'} ON {node.inner.alias}.{node.column} = "
            f"{render(node.left_key)}{residual}"
        )
    if isinstance(node, Aggregate):
        groups = ", ".join(render(g) for g in node.groups)
        aggregates = ", ".join(render(a) for a in node.aggregates)
        by = f" GROUP BY {groups}" if groups else ""
        return f"Aggregate {aggregates or '-'}{by}"
    if isinstance(node, Project):
        return "Project " + ", ".join(render(e) for e in node.exprs[: node.width])
    if isinstance(node, Distinct):
        return "Distinct"
    if isinstance(node, Sort):
        return "Sort " + ", ".join(node.labels)
    if isinstance(node, Limit):
        limit = "ALL" if node.limit is None else str(node.limit)
        return f"Limit {limit}" + (f" OFFSET {node.offset}" if node.offset else "")
    raise AssertionError(f"unknown plan node {node!r}")


def _lookup(node: IndexScan) -> str:
    column = ", ".join(node.columns)
    if len(node.columns) > 1:
        column = f"({column})"
    if node.mode == "eq":
        return f"{column} = {literal(node.values[0])}"
    if node.mode == "in":
        return f"{column} IN ({', '.join(literal(v) for v in node.values)})"
    if node.mode == "prefix":
        return f"{column} STARTS WITH {node.values[0]!r}"
    parts = []
    if node.mode == "prefix_range":
        prefix, low, high, high_inclusive = node.values
        parts.append(f"{column} STARTS WITH {prefix!r}")
        column = node.columns[len(prefix)]
    else:
        low, high, high_inclusive = node.values
    if low is not None:
        parts.append(f"{column} >= {literal(low)}")
    if high is not None:
        parts.append(f"{column} {'<=' if high_inclusive else '<'} {literal(high)}")
    return " AND ".join(parts) or f"every row, in {column} order"
