"""The compiled shape of a subscribed query: its FROM positions and its delta terms.

A ``Source`` is one position in FROM. A ``Term`` is the plan of one delta term (see
``delta.py``): it starts from one position's changed rows and binds the others one at a
time, in an order chosen once, at compile time: first a position reachable by an
indexed equality (a unique one first, then a join equality, then a constant), then one
sharing a condition, else the next in FROM order. Each conjunct runs as soon as every
position it reads is bound. A position is looked up through a single-column index or
the primary key when an equality allows (``Lookup``), otherwise scanned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cosmictron.datastore import TableSchema
from cosmictron.query.expressions import compile_expr
from cosmictron.query.plan import Binary, Col, Expr, slots

Row = tuple[Any, ...]
Check = Callable[[Any], Any]
"""A compiled expression run over the partial joined row (a list, indexed by slot)."""


@dataclass(frozen=True)
class Source:
    """One position in FROM: its table, alias and where its columns start."""

    table: TableSchema = field(compare=False)
    name: str
    alias: str
    base: int
    width: int


@dataclass(frozen=True)
class Lookup:
    """Find a position's rows by ``column`` (a table position) equal to ``key(row)``.

    ``index`` names a single-column index; None means the column is the primary key.
    """

    column: int
    index: str | None
    key: Check


@dataclass(frozen=True)
class Step:
    """Bind ``source`` (by ``lookup`` or a scan), then check ``checks``."""

    position: int
    lookup: Lookup | None
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class Term:
    """The delta term started from position ``seed``: seed checks, then the steps."""

    seed: int
    seed_checks: tuple[Check, ...]
    steps: tuple[Step, ...]


def plan_term(seed: int, sources: list[Source], predicates: list[Expr]) -> Term:
    """The order in which the delta term from ``seed`` binds the other positions."""

    def position_of(slot: int) -> int:
        for position, source in enumerate(sources):
            if source.base <= slot < source.base + source.width:
                return position
        raise AssertionError(slot)

    needs = [{position_of(s) for s in slots(p)} for p in predicates]
    bound = {seed}
    done = [False] * len(predicates)

    def ready() -> tuple[Check, ...]:
        found = []
        for number, predicate in enumerate(predicates):
            if not done[number] and needs[number] <= bound:
                done[number] = True
                found.append(compile_expr(predicate))
        return tuple(found)

    seed_checks = ready()
    steps: list[Step] = []
    remaining = [p for p in range(len(sources)) if p != seed]
    while remaining:
        choice, lookup = _choose(remaining, sources, predicates, needs, bound, position_of)
        remaining.remove(choice)
        bound.add(choice)
        steps.append(Step(choice, lookup, ready()))
    return Term(seed, seed_checks, tuple(steps))


def _choose(
    remaining: list[int],
    sources: list[Source],
    predicates: list[Expr],
    needs: list[set[int]],
    bound: set[int],
    position_of: Callable[[int], int],
) -> tuple[int, Lookup | None]:
    connected: int | None = None
    for position in remaining:
        source = sources[position]
        best: tuple[int, Lookup] | None = None
        for predicate, need in zip(predicates, needs, strict=True):
            if position not in need or not need - {position} <= bound:
                continue
            joins = bool(need - {position})
            if connected is None and joins:
                connected = position
            lookup = _lookup(predicate, source, position, position_of)
            if lookup is not None:
                # A unique lookup yields at most one row; a join equality narrows to the
                # rows matching this combination; a constant may match many (a region).
                rank = 0 if is_unique(source.table, lookup.index) else (1 if joins else 2)
                if best is None or rank < best[0]:
                    best = (rank, lookup)
        if best is not None:
            return position, best[1]
    return (remaining[0] if connected is None else connected), None


def is_unique(table: TableSchema, index: str | None) -> bool:
    """Whether a lookup through ``index`` (None: the primary key) finds at most one row."""
    if index is None:
        return True
    return any(candidate.name == index and candidate.unique for candidate in table.indexes)


def _lookup(
    predicate: Expr, source: Source, position: int, position_of: Callable[[int], int]
) -> Lookup | None:
    """A lookup if ``predicate`` is ``column = <expr of bound positions>``, indexed."""
    if not isinstance(predicate, Binary) or predicate.op != "=":
        return None
    for column, other in ((predicate.left, predicate.right), (predicate.right, predicate.left)):
        if not isinstance(column, Col) or position_of(column.slot) != position:
            continue
        if any(position_of(s) == position for s in slots(other)):
            continue
        name = source.table.columns[column.slot - source.base].name
        indexed, index = index_on(source.table, name)
        if indexed:
            return Lookup(column.slot - source.base, index, compile_expr(other))
    return None


def index_on(table: TableSchema, column: str) -> tuple[bool, str | None]:
    """Whether ``column`` alone is indexed, and the index (None: the primary key)."""
    if tuple(table.primary_key) == (column,):
        return True, None
    for index in table.indexes:
        if tuple(index.columns) == (column,):
            return True, str(index.name)
    return False, None
