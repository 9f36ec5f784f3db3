"""Answer a table's filter with an index instead of a full scan, where one fits.

The rule looks at each ``Filter`` directly over a ``Scan`` and at the conjuncts comparing a
column with a constant. In order of preference it picks:

1. equality on every column of the primary key, or of a unique index (one row at most);
2. equality on every column of any index, hash or btree;
3. ``IN (constants)`` on a single-column primary key or index;
4. equality on a leading prefix of a composite btree index or primary key, and a range
   on the column after it when there is one (``a = 1 AND b > 5`` on an index on
   ``(a, b, c)`` reads only the keys from ``(1, 5)`` to the end of ``(1, ...)``);
5. a range (``< <= > >= BETWEEN``) on a single-column btree index or primary key.

Equalities an index answers exactly are dropped from the filter; range conjuncts are
kept, because an index range starts inclusively and (on an Optional column) puts NULLs
first, so the filter still trims the edges. A comparison with NULL is never looked up:
it matches nothing, and an index would find the NULL keys.

A parameter (``Param``) counts as a constant: the lookup values may hold ``Param`` slots,
filled when the statement runs, so ``id = :id`` is a primary-key lookup whatever the value.
(A parameter is never NULL here: a NULL parameter is planned as the constant NULL.)
Two range bounds on one column can be compared only when both are constants; otherwise
the first is used, which is safe because the range conjuncts stay in the filter.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cosmictron.datastore import TableSchema
from cosmictron.query.plan import (
    Between,
    Binary,
    Col,
    Const,
    Expr,
    Filter,
    IndexScan,
    InList,
    Node,
    Param,
    Scan,
    conjoin,
    conjuncts,
    node_children,
)

_FLIP = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def choose_indexes(plan: Node) -> Node:
    """Replace ``Filter(Scan)`` with ``IndexScan`` (plus what is left of the filter).

    >>> from cosmictron.datastore import ColumnSchema, TableSchema
    >>> from cosmictron.datastore.types import I64
    >>> from cosmictron.query.explain import explain
    >>> item = TableSchema("item", (ColumnSchema("id", I64), ColumnSchema("n", I64)), ("id",))
    >>> where = Binary(
    ...     "AND", Binary("=", Col(0, "id"), Const(5)), Binary(">", Col(1, "n"), Const(1))
    ... )
    >>> explain(choose_indexes(Filter(Scan(item, "item"), where)))
    ['IndexScan item USING primary_key (id = 5)', 'Filter (n > 1)']
    >>> pair = TableSchema("pair", item.columns, ("id", "n"))
    >>> where = Binary(
    ...     "AND", Binary("=", Col(0, "id"), Const(5)), Binary(">", Col(1, "n"), Const(1))
    ... )
    >>> explain(choose_indexes(Filter(Scan(pair, "pair"), where)))[0]
    'IndexScan pair USING primary_key ((id, n) STARTS WITH (5,) AND n >= 1)'
    """
    if isinstance(plan, Filter) and isinstance(plan.child, Scan):
        return _index_scan(plan.child, plan.predicate)
    if not node_children(plan):
        return plan
    changes: dict[str, Any] = {}
    for name in ("child", "left", "right"):
        value = getattr(plan, name, None)
        if isinstance(value, Node):
            changes[name] = choose_indexes(value)
    return replace(plan, **changes)


def _column_constant(expr: Expr) -> tuple[str, int, Any] | None:
    """``(op, column position, constant)`` for ``col op constant`` in either order."""
    if not isinstance(expr, Binary) or expr.op not in _FLIP:
        return None
    if isinstance(expr.left, Col) and isinstance(expr.right, Const | Param):
        return expr.op, expr.left.slot, _constant(expr.right)
    if isinstance(expr.right, Col) and isinstance(expr.left, Const | Param):
        return _FLIP[expr.op], expr.right.slot, _constant(expr.left)
    return None


def _constant(expr: Expr) -> Any:
    """A constant's value, or the ``Param`` itself (a slot filled at execution)."""
    return expr.value if isinstance(expr, Const) else expr


def _candidates(table: TableSchema) -> list[tuple[str | None, tuple[str, ...], str, bool]]:
    """Every index as ``(name or None for the primary key, columns, kind, unique)``."""
    found: list[tuple[str | None, tuple[str, ...], str, bool]] = []
    if table.primary_key:
        found.append((None, table.primary_key, "btree", True))
    found.extend((i.name, i.columns, i.kind, i.unique) for i in table.indexes)
    return found


def _index_scan(scan: Scan, predicate: Expr) -> Node:
    parts = conjuncts(predicate)
    names = scan.table.column_names
    equal: dict[str, tuple[Any, Expr]] = {}
    ranges: dict[str, list[tuple[str, Any]]] = {}
    lists: dict[str, tuple[tuple[Any, ...], Expr]] = {}
    values: Any
    for expr in parts:
        found = _column_constant(expr)
        if found is not None and found[2] is not None:
            op, slot, value = found
            if op == "=":
                equal.setdefault(names[slot], (value, expr))
            else:
                ranges.setdefault(names[slot], []).append((op, value))
        elif isinstance(expr, InList) and not expr.negated and isinstance(expr.operand, Col):
            values = [_constant(item) for item in expr.items if isinstance(item, Const | Param)]
            if len(values) == len(expr.items) and None not in values:
                lists.setdefault(names[expr.operand.slot], (tuple(dict.fromkeys(values)), expr))
        elif (
            isinstance(expr, Between)
            and not expr.negated
            and isinstance(expr.operand, Col)
            and isinstance(expr.low, Const | Param)
            and isinstance(expr.high, Const | Param)
            and _constant(expr.low) is not None
            and _constant(expr.high) is not None
        ):
            bounds = ranges.setdefault(names[expr.operand.slot], [])
            bounds += [(">=", _constant(expr.low)), ("<=", _constant(expr.high))]
    indexes = _candidates(scan.table)

    def result(
        index: str | None, columns: tuple[str, ...], mode: str, values: Any, used: list[Expr]
    ) -> Node:
        node = IndexScan(scan.table, scan.alias, index, columns, mode, values, scan.base)
        rest = conjoin([p for p in parts if not any(p is u for u in used)])
        return node if rest is None else Filter(node, rest)

    ranked = sorted(indexes, key=lambda candidate: not candidate[3])
    for name, columns, _, unique in ranked:  # 1 and 2: every column equal
        if all(c in equal for c in columns):
            if not unique and (better := _prefix_range(indexes, equal, ranges, len(columns))):
                # 4 answers as many equalities as this index, and a range besides.
                return result(*better)
            key = tuple(equal[c][0] for c in columns)
            used = [equal[c][1] for c in columns]
            return result(name, columns, "eq", (key[0] if len(key) == 1 else key,), used)
    for name, columns, _, _ in indexes:  # 3: IN on one column
        if len(columns) == 1 and columns[0] in lists:
            values, expr = lists[columns[0]]
            return result(name, columns, "in", values, [expr])
    for name, columns, kind, _ in indexes:  # 4: prefix of a composite btree
        width = 0
        while width < len(columns) and columns[width] in equal:
            width += 1
        if kind == "btree" and len(columns) > 1 and width:
            if better := _prefix_range(indexes, equal, ranges, 1):
                return result(*better)
            prefix = tuple(equal[c][0] for c in columns[:width])
            used = [equal[c][1] for c in columns[:width]]
            return result(name, columns, "prefix", (prefix,), used)
    for name, columns, kind, _ in indexes:  # 5: a range on one btree column
        if kind == "btree" and len(columns) == 1 and columns[0] in ranges:
            low, high, inclusive = _bounds(ranges[columns[0]])
            if low is not None or high is not None:
                return result(name, columns, "range", (low, high, inclusive), [])
    return Filter(scan, predicate)


def _prefix_range(
    indexes: list[tuple[str | None, tuple[str, ...], str, bool]],
    equal: dict[str, tuple[Any, Expr]],
    ranges: dict[str, list[tuple[str, Any]]],
    width_min: int,
) -> tuple[str | None, tuple[str, ...], str, tuple[Any, ...], list[Expr]] | None:
    """A composite btree answering equalities on a prefix of at least ``width_min``
    columns and a range on the column after it: ``(name, columns, mode, values, used)``."""
    for name, columns, kind, _ in indexes:
        width = 0
        while width < len(columns) and columns[width] in equal:
            width += 1
        if kind != "btree" or width < width_min or width >= len(columns):
            continue
        if columns[width] not in ranges:
            continue
        low, high, inclusive = _bounds(ranges[columns[width]])
        if low is None and high is None:
            continue
        prefix = tuple(equal[c][0] for c in columns[:width])
        used = [equal[c][1] for c in columns[:width]]
        return name, columns, "prefix_range", (prefix, low, high, inclusive), used
    return None


def _bounds(comparisons: list[tuple[str, Any]]) -> tuple[Any, Any, bool]:
    """The tightest ``[low, high]`` the comparisons allow (low always inclusive).

    >>> _bounds([(">", 3), ("<=", 9), ("<", 12)])
    (3, 9, True)
    """
    low = high = None
    inclusive = False
    for op, value in comparisons:
        if isinstance(value, Param) and (low if op in (">", ">=") else high) is not None:
            continue  # cannot compare with a bound chosen before; the filter checks it
        try:
            if op in (">", ">=") and (low is None or value > low):
                low = value
            elif op in ("<", "<=") and (
                high is None or value < high or (value == high and op == "<")
            ):
                high, inclusive = value, op == "<="
        except TypeError:  # incomparable constants (or a Param): leave it to the filter
            continue
    return low, high, inclusive
