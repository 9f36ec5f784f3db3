"""Choose the order a ``JoinGroup``'s tables are joined in, by estimated cost.

The plan is left-deep, as before: the first table is scanned and each next table is
joined to the rows so far by ``rules/joins.py``'s choice (an index lookup per row when
the new table has an index on a column equated with the rows so far, else a hash join,
else a nested loop). What changes is the order, chosen here from cheap statistics
(``statistics.py``: row counts and the distinct keys of each index, both kept by the
datastore as rows change, so nothing is scanned to plan):

- a table's rows after its own conditions: its row count times a selectivity per
  condition (``1/distinct`` for an equality on an indexed column, ``1/10`` on another,
  ``1/3`` for a range, ``1/2`` otherwise);
- an equality between tables keeps ``1/max(distinct)`` of the pairs, where a column
  without an index counts as a key of its (filtered) table; any other relating
  condition keeps ``1/3``;
- a step's cost is what it reads: an index lookup per row so far (and the matches it
  finds), or the new table's scan plus a probe per row, or every pair for a nested loop;
  plus the rows it produces.

With up to ``EXHAUSTIVE_MAX`` tables every left-deep order is considered by dynamic
programming over subsets (Selinger's method: the best way to join each set of tables,
built from the best ways to join its subsets); past that, a greedy order starts from
each of the few smallest tables and always adds the cheapest next table. Either way a table with no
condition relating it to the tables so far is added only when no other is left (a
cross product never comes ahead of a connecting predicate). Ties keep FROM order.

The group runs in the chosen order but yields rows in FROM order (one tuple shuffle per
row, skipped when the order is FROM order), so the rest of the plan never knows.
The choice is remembered per power-of-two bucket of the tables' sizes
(``JoinGroup.memo``), so a statement run again plans again only when a table has
roughly doubled or halved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any

from cosmictron.query.plan import (
    Between,
    Binary,
    Col,
    Const,
    Expr,
    Filter,
    IndexScan,
    InList,
    IsNull,
    Join,
    JoinGroup,
    KeySet,
    Node,
    Param,
    Scan,
    SemiJoin,
    conjoin,
    conjuncts,
    slots,
)
from cosmictron.query.rules.indexes import choose_indexes
from cosmictron.query.rules.joins import choose_joins
from cosmictron.query.statistics import Statistics

EXHAUSTIVE_MAX = 8
"""Up to this many tables every left-deep order is costed; past it, a greedy order."""

MEMO_ENTRIES_MAX = 32
"""Orders a group remembers (one per size bucket) before it forgets them all."""

_RANGE = frozenset({"<", "<=", ">", ">="})


@dataclasses.dataclass(frozen=True)
class PlannedGroup:
    """A group's chosen order (positions in FROM order), its estimates and its plan.

    ``steps`` holds the estimated rows after each step (the first table's rows after
    its own conditions, then the rows after each join); ``layout`` maps each slot of
    the FROM-order row to its slot in the joined row (None when the order is FROM's).
    """

    order: tuple[int, ...]
    steps: tuple[float, ...]
    cost: float
    plan: Node
    layout: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None


@dataclasses.dataclass
class _Relation:
    scan: Scan
    rows: float  # estimated, after its own conditions
    scan_cost: float  # reading it on its own (an index range or lookup when one fits)
    table_rows: int


class _Model:
    """The estimates for one group under one set of statistics."""

    def __init__(self, group: JoinGroup, stats: Statistics) -> None:
        self.stats = stats
        self.scans = [_scan_of(node) for node in group.relations]
        self.relations = [self._relation(node) for node in group.relations]
        self.count = len(self.relations)
        # Each relating condition: the tables it reads (a bitmask) and what it keeps.
        self.exprs = group.conditions
        self.conditions = [(self._mask(e), self._selectivity(e)) for e in group.conditions]
        # The conditions reading each table: a step looks at its table's only.
        self.touching: list[list[int]] = [[] for _ in self.relations]
        self.neighbours = [0] * self.count  # the tables a condition relates each one to
        for position, (mask, _) in enumerate(self.conditions):
            for number in range(self.count):
                if mask & (1 << number):
                    self.touching[number].append(position)
                    self.neighbours[number] |= mask & ~(1 << number)

    # -- per table --------------------------------------------------------------------

    def _relation(self, node: Node) -> _Relation:
        scan = _scan_of(node)
        table_rows = self.stats.rows(scan.name)
        rows = float(table_rows)
        predicate = node.predicate if isinstance(node, Filter) else None
        for expr in conjuncts(predicate):
            rows *= self._filter_selectivity(scan, expr)
        rows = min(float(table_rows), max(rows, 1.0)) if table_rows else 0.0
        chosen = node if predicate is None else choose_indexes(node)
        if isinstance(chosen, Filter):
            chosen = chosen.child
        indexed = isinstance(chosen, IndexScan)
        scan_cost = rows if indexed else float(table_rows)
        return _Relation(scan, rows, max(scan_cost, 1.0), table_rows)

    def _filter_selectivity(self, scan: Scan, expr: Expr) -> float:
        if isinstance(expr, Binary) and expr.op == "=":
            for column, value in ((expr.left, expr.right), (expr.right, expr.left)):
                if isinstance(column, Col) and isinstance(value, Const | Param):
                    name = scan.table.columns[column.slot].name
                    distinct = self.stats.distinct(scan.name, name)
                    return 1.0 / distinct if distinct else 0.1
            return 0.1
        if (isinstance(expr, Binary) and expr.op in _RANGE) or isinstance(expr, Between):
            return 1 / 3
        if isinstance(expr, InList):
            return min(1.0, 0.1 * max(len(expr.items), 1))
        if isinstance(expr, IsNull):
            return 0.5 if expr.negated else 0.1
        if isinstance(expr, KeySet):
            return 0.5
        if isinstance(expr, Binary) and expr.op == "OR":
            left = self._filter_selectivity(scan, expr.left)
            right = self._filter_selectivity(scan, expr.right)
            return min(1.0, left + right)
        return 0.5

    # -- relating conditions ----------------------------------------------------------

    def _table_of(self, slot: int) -> int:
        for number, scan in enumerate(self.scans):
            if scan.base <= slot < scan.base + len(scan.table.columns):
                return number
        raise AssertionError(f"slot {slot} is outside the group")

    def _mask(self, expr: Expr) -> int:
        mask = 0
        for slot in slots(expr):
            mask |= 1 << self._table_of(slot)
        return mask

    def _distinct(self, number: int, column: Expr) -> float:
        relation = self.relations[number]
        if isinstance(column, Col):
            scan = self.scans[number]
            name = scan.table.columns[column.slot - scan.base].name
            distinct = self.stats.distinct(scan.name, name)
            if distinct:
                return float(min(distinct, max(relation.rows, 1.0)))
        return max(relation.rows, 1.0)

    def _selectivity(self, expr: Expr) -> float:
        """What fraction of the pairs ``expr`` keeps."""
        if isinstance(expr, Binary) and expr.op == "=":
            left, right = slots(expr.left), slots(expr.right)
            if left and right:
                left_tables = {self._table_of(s) for s in left}
                right_tables = {self._table_of(s) for s in right}
                if len(left_tables) == 1 and len(right_tables) == 1 and left_tables != right_tables:
                    (a,), (b,) = left_tables, right_tables
                    return 1.0 / max(self._distinct(a, expr.left), self._distinct(b, expr.right))
            return 0.1
        if (isinstance(expr, Binary) and expr.op in _RANGE) or isinstance(expr, Between):
            return 1 / 3
        return 0.5

    def _lookup(self, done: int, number: int) -> float | None:
        """Rows one index lookup into table ``number`` finds, when a condition equates
        one of its indexed columns with the tables in ``done`` (None: no such lookup)."""
        scan = self.scans[number]
        best: float | None = None
        for expr in self._equalities(done, number):
            for side in (expr.left, expr.right):
                if not isinstance(side, Col) or self._table_of(side.slot) != number:
                    continue
                name = scan.table.columns[side.slot - scan.base].name
                distinct = self.stats.distinct(scan.name, name)
                if distinct is None:
                    continue
                found = self.relations[number].table_rows / max(distinct, 1)
                best = found if best is None else min(best, found)
        return best

    def _equalities(self, done: int, number: int) -> list[Binary]:
        found = []
        for position in self.touching[number]:
            expr = self.exprs[position]
            mask = self.conditions[position][0]
            if (
                isinstance(expr, Binary)
                and expr.op == "="
                and mask & (1 << number)
                and mask & ~(1 << number) & ~done == 0
                and mask & done
            ):
                found.append(expr)
        return found

    # -- orders -----------------------------------------------------------------------

    def step(self, done: int, rows: float, number: int) -> tuple[float, float, bool]:
        """(cost, rows out, connected) of joining table ``number`` to the set ``done``."""
        relation = self.relations[number]
        bit = 1 << number
        keep = 1.0
        connected = False
        equality = False
        for position in self.touching[number]:
            expr = self.exprs[position]
            mask, selectivity = self.conditions[position]
            if mask & bit and mask & done and mask & ~bit & ~done == 0:
                keep *= selectivity
                connected = True
                if isinstance(expr, Binary) and expr.op == "=":
                    equality = True
        out = rows * relation.rows * keep
        lookup = self._lookup(done, number) if equality else None
        if lookup is not None:
            cost = rows * (1.0 + lookup)
        elif equality:
            cost = relation.scan_cost + relation.rows + rows
        else:
            cost = relation.scan_cost + rows * max(relation.rows, 1.0)
        return cost + out, out, connected


def _scan_of(node: Node) -> Scan:
    if isinstance(node, Filter):
        node = node.child
    assert isinstance(node, Scan), node
    return node


def plan_group(group: JoinGroup, stats: Statistics, *, remember: bool = True) -> PlannedGroup:
    """The cheapest order for ``group`` under ``stats``, and its physical plan.

    ``remember`` False: neither read nor write the group's memo (guessed statistics).
    """
    key = tuple(stats.rows(_scan_of(node).name).bit_length() for node in group.relations)
    memo = group.memo
    found = memo.plans.get(key) if remember else None
    if found is not None and isinstance(found, PlannedGroup):
        return found
    if found is not None:
        order, steps, cost = found
    else:
        model = _Model(group, stats)
        order, steps, cost = _exhaustive(model) if model.count <= EXHAUSTIVE_MAX else _greedy(model)
    planned = PlannedGroup(order, steps, cost, *assemble(group, order))
    if not remember:
        return planned
    if len(memo.plans) >= MEMO_ENTRIES_MAX:
        memo.plans.clear()
    memo.plans[key] = planned if memo.reusable else (order, steps, cost)
    return planned


_Best = tuple[float, float, tuple[int, ...], tuple[float, ...]]  # cost, rows, order, steps


def _first(model: _Model, number: int) -> _Best:
    relation = model.relations[number]
    return (relation.scan_cost + relation.rows, relation.rows, (number,), (relation.rows,))


def _extend(model: _Model, best: _Best, done: int) -> list[tuple[_Best, int]]:
    """Every way to add one table to ``best`` (a join of the set ``done``), connected
    ones only unless none is."""
    cost, rows, order, steps = best
    reach = 0
    for number in order:
        reach |= model.neighbours[number]
    reach &= ~done
    options: list[tuple[_Best, int, bool]] = []
    for number in range(model.count):
        if done & (1 << number) or (reach and not reach & (1 << number)):
            continue  # only tables a condition relates to ``done``, while there are any
        step_cost, out, connected = model.step(done, rows, number)
        options.append(
            ((cost + step_cost, out, (*order, number), (*steps, out)), number, connected)
        )
    if any(connected for _, _, connected in options):
        options = [option for option in options if option[2]]
    return [(candidate, number) for candidate, number, _ in options]


def _exhaustive(model: _Model) -> tuple[tuple[int, ...], tuple[float, ...], float]:
    best: dict[int, _Best] = {1 << n: _first(model, n) for n in range(model.count)}
    for _size in range(1, model.count):
        grown: dict[int, _Best] = {}
        for done, plan in best.items():
            for candidate, number in _extend(model, plan, done):
                mask = done | (1 << number)
                held = grown.get(mask)
                if held is None or candidate[0] < held[0]:
                    grown[mask] = candidate
        best = grown
    (final,) = best.values()
    return final[2], final[3], final[0]


GREEDY_STARTS = 4
"""The greedy order is tried from this many first tables (those with the fewest rows)."""


def _greedy(model: _Model) -> tuple[tuple[int, ...], tuple[float, ...], float]:
    chosen: _Best | None = None
    starts = sorted(range(model.count), key=lambda n: (model.relations[n].rows, n))
    for start in starts[:GREEDY_STARTS]:
        plan = _first(model, start)
        done = 1 << start
        while len(plan[2]) < model.count:
            candidate, number = min(_extend(model, plan, done), key=lambda c: c[0][0])
            plan, done = candidate, done | (1 << number)
        if chosen is None or plan[0] < chosen[0]:
            chosen = plan
    assert chosen is not None
    return chosen[2], chosen[3], chosen[0]


# -- the plan in the chosen order -----------------------------------------------------


def assemble(
    group: JoinGroup, order: Sequence[int]
) -> tuple[Node, Callable[[tuple[Any, ...]], tuple[Any, ...]] | None]:
    """The physical plan joining ``group`` in ``order``, and the function putting its
    rows back in FROM order (None when ``order`` is FROM order)."""
    scans = [_scan_of(node) for node in group.relations]
    new_base: dict[int, int] = {}
    base = 0
    for number in order:
        new_base[number] = base
        base += len(scans[number].table.columns)
    slot_of: dict[int, int] = {}
    for number, scan in enumerate(scans):
        for position in range(len(scan.table.columns)):
            slot_of[scan.base + position] = new_base[number] + position
    arrived: list[int] = []
    pending = [(expr, {_owner(scans, s) for s in slots(expr)}) for expr in group.conditions]
    node: Node | None = None
    for number in order:
        arrived.append(number)
        relation = _rebased(group.relations[number], new_base[number])
        if node is None:
            node = relation
            continue
        ready = [expr for expr, tables in pending if tables <= set(arrived)]
        pending = [(expr, tables) for expr, tables in pending if not tables <= set(arrived)]
        condition = conjoin([remap(expr, slot_of) for expr in ready])
        node = Join("INNER", node, relation, condition)
    assert node is not None and not pending
    plan = choose_indexes(choose_joins(node))
    if list(order) == sorted(order):
        return plan, None
    getter = itemgetter(*(slot_of[slot] for slot in range(len(slot_of))))
    if len(slot_of) == 1:
        return plan, lambda row: (getter(row),)
    return plan, getter


def _owner(scans: list[Scan], slot: int) -> int:
    for number, scan in enumerate(scans):
        if scan.base <= slot < scan.base + len(scan.table.columns):
            return number
    raise AssertionError(f"slot {slot} is outside the group")


def _rebased(node: Node, base: int) -> Node:
    if isinstance(node, Filter):
        assert isinstance(node.child, Scan)
        return replace(node, child=replace(node.child, base=base))
    assert isinstance(node, Scan)
    return replace(node, base=base)


def remap(expr: Expr, slot_of: dict[int, int]) -> Expr:
    """``expr`` with each column slot moved as ``slot_of`` says (a general ``shift``)."""
    if isinstance(expr, Col):
        return Col(slot_of[expr.slot], expr.name, expr.type)
    if isinstance(expr, SemiJoin | KeySet):
        return replace(expr, keys=tuple(remap(key, slot_of) for key in expr.keys))
    changes: dict[str, Any] = {}
    for item in dataclasses.fields(expr):
        value = getattr(expr, item.name)
        moved = _remap_part(value, slot_of)
        if moved is not value:
            changes[item.name] = moved
    return replace(expr, **changes) if changes else expr


def _remap_part(value: Any, slot_of: dict[int, int]) -> Any:
    """A field of an expression remapped: an expression, or a tuple of them at any
    nesting (a CASE's ``whens`` are pairs), else as it is."""
    if isinstance(value, Expr):
        return remap(value, slot_of)
    if isinstance(value, tuple):
        parts = tuple(_remap_part(part, slot_of) for part in value)
        return value if all(a is b for a, b in zip(parts, value, strict=True)) else parts
    return value


def estimate_text(rows: float) -> str:
    """An estimate as EXPLAIN prints it: ``~12`` (whole rows, at least 0)."""
    if math.isinf(rows) or rows > 1e15:
        return "~1e15+"
    return f"~{round(rows)}"
