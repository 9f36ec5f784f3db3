"""Decorrelation: a correlated subquery run once and hashed on its correlation key.

Run naively, ``EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.v > 3)`` executes its
inner query once per row of ``t``. When the subquery is correlated only through
top-level equalities of its WHERE (``inner = outer``), the same answers come from one
run of the inner query without those equalities, its rows keyed by the inner side of
each: a semi-join (EXISTS, IN) or an anti-join (NOT EXISTS, NOT IN) by hash, and for a
scalar aggregate (``SELECT COUNT(*) FROM u WHERE u.k = t.k``) a GROUP BY on the key,
with the empty group's value for a key no inner row has. This module computes that
plan from the subquery's logical plan, or None when its shape does not allow it (a
LIMIT, a HAVING, GROUP BY, an outer value read other than by equality, ordering a
scalar subquery depends on); ``subquery_run.py`` decides at run time which to use.

NULL: an equality with NULL is never true, so inner rows whose key has a NULL are
never hashed and an outer row whose key has one matches nothing, as the per-row
query would find.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cosmictron.query.plan import (
    Aggregate,
    Binary,
    Col,
    Const,
    Distinct,
    Expr,
    Filter,
    Limit,
    Node,
    Param,
    Project,
    Sort,
    Subqueries,
    conjoin,
    conjuncts,
    shift,
    type_of,
)
from cosmictron.query.render import render


def decorrelate(
    kind: str, plan: Node, names: tuple[str, ...], width: int = 1
) -> tuple[Node, tuple[str, ...]] | None:
    """The hashed form of a subquery of ``kind`` whose outer values are ``names``.

    Returns ``(plan, key_names)``: ``plan``'s rows are the key values (one per
    correlation equality, ``key_names[i]`` the outer value it equals) then the
    subquery's one column (IN, scalar) or TRUE (EXISTS); ``width`` columns for a row
    value's ``(a, b) IN (SELECT x, y ...)``. None: not decorrelatable.
    """
    if not names:
        return None
    wrapped = isinstance(plan, Subqueries)
    if isinstance(plan, Subqueries):
        plan = plan.child
    if isinstance(plan, Limit):
        return None
    if isinstance(plan, Sort):
        if kind == "scalar":
            return None
        plan = plan.child
    if isinstance(plan, Distinct):
        if kind == "scalar":
            return None
        plan = plan.child
    if not isinstance(plan, Project):
        return None
    below = plan.child
    aggregate: Aggregate | None = None
    if isinstance(below, Aggregate):
        if kind != "scalar" or below.groups:
            return None
        aggregate = below
        below = below.child
    elif isinstance(below, Filter) and isinstance(below.child, Aggregate):
        return None  # HAVING
    where, chain = (below.predicate, below.child) if isinstance(below, Filter) else (None, below)
    if reads(chain, names) or reads(plan.exprs[:width], names):
        return None
    if aggregate is not None and reads(aggregate.aggregates, names):
        return None
    keys: list[Expr] = []
    key_names: list[str] = []
    rest: list[Expr] = []
    for conjunct in conjuncts(where):
        pair = _correlation(conjunct, names)
        if pair is not None:
            keys.append(pair[0])
            key_names.append(pair[1])
        elif reads(conjunct, names):
            return None
        else:
            rest.append(conjunct)
    if set(key_names) != set(names):
        return None
    condition = conjoin(rest)
    body: Node = chain if condition is None else Filter(chain, condition)
    hashed: Node
    if aggregate is None:
        values = (Const(True),) if kind == "exists" else plan.exprs[:width]
        hashed = Project(body, (*keys, *values), len(keys) + len(values))
    else:
        slots = tuple(Col(i, render(key), type_of(key)) for i, key in enumerate(keys))
        grouped = Aggregate(body, tuple(keys), aggregate.aggregates)
        hashed = Project(grouped, (*slots, shift(plan.exprs[0], len(keys))), len(keys) + 1)
    return (Subqueries(hashed) if wrapped else hashed), tuple(key_names)


def _correlation(expr: Expr, names: tuple[str, ...]) -> tuple[Expr, str] | None:
    """``inner = outer`` (either way round): the inner side and the outer value's name."""
    if not isinstance(expr, Binary) or expr.op != "=":
        return None
    for inner, outer in ((expr.left, expr.right), (expr.right, expr.left)):
        if isinstance(outer, Param) and outer.name in names and not reads(inner, names):
            return inner, outer.name
    return None


def reads(value: Any, names: tuple[str, ...]) -> bool:
    """Whether ``value`` (a plan, expression or tuple of them) reads an outer value."""
    if isinstance(value, Param):
        return value.name in names
    if isinstance(value, tuple | list):
        return any(reads(item, names) for item in value)
    if (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__module__.startswith("cosmictron.query")
    ):
        return any(reads(getattr(value, f.name), names) for f in dataclasses.fields(value))
    return False
