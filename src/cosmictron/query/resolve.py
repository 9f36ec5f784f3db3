"""Bind SQLGlot expressions to our ``Expr`` values: names to slots, literals to types.

Binding is where a query meets the schema, so this is where most user errors are found:
an unknown or ambiguous column, a literal that does not fit its column, a construct we do
not support. Each error points at the offending text through ``Source``. A parameter
becomes a ``Param`` slot, filled with its value each time the statement runs
(``query/params.py``), so a planned statement can be cached and reused; only its static
type (and whether it is NULL) is known here, which the cache keys on. Parameter values
never pass through the SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from cosmictron.datastore import ColumnType, TableSchema, TypeMismatch
from cosmictron.datastore.types import BOOL, F64, I64, STR, IntType
from cosmictron.query.affinity import never_a_number, ordered
from cosmictron.query.coerce import base, coerce, family, is_numeric, type_of_value
from cosmictron.query.plan import (
    Agg,
    Between,
    Binary,
    Col,
    Const,
    Expr,
    Func,
    InList,
    IsNull,
    Like,
    Param,
    Unary,
    children,
    type_of,
)
from cosmictron.query.position import Source
from cosmictron.query.resolve_functions import (
    bind_extended,
    bind_is_boolean,
    is_null_constant,
    row_items,
    unparen,
)
from cosmictron.values import Identity

_COMPARISONS: dict[type[exp.Expression], str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_ARITHMETIC: dict[type[exp.Expression], str] = {
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
    exp.DPipe: "||",
}
_AGGREGATES: dict[type[exp.Expression], str] = {
    exp.Count: "COUNT",
    exp.Sum: "SUM",
    exp.Avg: "AVG",
    exp.Min: "MIN",
    exp.Max: "MAX",
    exp.GroupConcat: "GROUP_CONCAT",
}


@dataclass(frozen=True)
class InnerTable:
    """A table inside a parenthesised join given an alias (``(a JOIN b ON …) AS j``):
    its name, its columns' names and where they start among the group's columns."""

    alias: str
    column_names: tuple[str, ...]
    offset: int


@dataclass(frozen=True)
class TableRef:
    """A table in ``FROM``: its alias and where its columns start in a joined row.

    ``inner`` holds the tables of a parenthesised join given an alias: SQLite lets a
    query name their columns through them (``a.x``) as well as through the group's alias
    (``j.x``), both reading the group's columns."""

    alias: str
    schema: TableSchema
    base: int
    inner: tuple[InnerTable, ...] = ()

    def answers_to(self, qualifier: str) -> bool:
        """Whether ``qualifier.column`` can name one of this table's columns."""
        return self.alias == qualifier or any(t.alias == qualifier for t in self.inner)

    def named(self, qualifier: str | None) -> list[tuple[tuple[str, ...], int]]:
        """The column names ``qualifier`` (None: no qualifier) sees in this table, each
        list with where it starts among the table's columns."""
        seen: list[tuple[tuple[str, ...], int]] = []
        if qualifier is None or qualifier == self.alias:
            seen.append((self.schema.column_names, 0))
        seen += [(t.column_names, t.offset) for t in self.inner if t.alias == qualifier]
        return seen


class Scope:
    """The tables a clause can see, in ``FROM`` order."""

    def __init__(self, tables: list[TableRef]) -> None:
        self.tables = tables

    def find(self, name: str, qualifier: str | None) -> list[tuple[TableRef, int]]:
        found = []
        for ref in self.tables:
            for names, offset in ref.named(qualifier):
                if name in names:
                    found.append((ref, offset + names.index(name)))
        return found

    def width(self) -> int:
        return sum(len(ref.schema.columns) for ref in self.tables)


class Binder:
    """Turns SQLGlot expression nodes into ``Expr`` against one ``Scope``."""

    def __init__(
        self,
        source: Source,
        scope: Scope,
        params: Mapping[str, Any],
        sender: Identity,
    ) -> None:
        self.source = source
        self.scope = scope
        self.params = params
        self.sender = sender
        self.aggregates_allowed = False
        self.clause = "WHERE"
        # Whether an aggregate was bound for this query, even one a fold then dropped
        # (``COUNT(*) * CAST(NULL AS INTEGER)`` is NULL, but its query is still an
        # aggregate one: one row over no rows, as in SQLite).
        self.aggregated = False

    def bind(self, node: exp.Expression) -> Expr:
        method = getattr(self, f"_bind_{type(node).__name__.lower()}", None)
        if method is not None:
            result: Expr = method(node)
            return result
        kind = type(node)
        if kind in _COMPARISONS:
            compared = self.compare(_COMPARISONS[kind], node.this, node.expression, node)
            if (
                isinstance(compared, Binary)
                and compared.op == _COMPARISONS[kind]  # not a row value's AND/OR
                and _null_either_way(compared)
            ):
                return Const(None, BOOL)  # ``x < NULL`` is NULL: x is never read
            return compared
        if kind in _ARITHMETIC:
            return self._arithmetic(_ARITHMETIC[kind], node)
        if kind in _AGGREGATES:
            return self._aggregate(_AGGREGATES[kind], node)
        if kind is exp.Anonymous and str(node.name).upper() == "TOTAL":
            return self._aggregate("TOTAL", node)
        extended = bind_extended(self, node)  # functions, CASE, CAST, IS, GLOB, ESCAPE
        if extended is not None:
            return extended
        self.source.fail(f"unsupported construct: {_construct(node)}", node)

    # -- leaves -------------------------------------------------------------------------

    def _bind_column(self, node: exp.Column) -> Expr:
        if isinstance(node.this, exp.Star):
            self.source.fail("a * is allowed only in the SELECT list or COUNT(*)", node)
        name, qualifier = node.name, node.table or None
        found = self.scope.find(name, qualifier)
        if qualifier is not None and not any(r.answers_to(qualifier) for r in self.scope.tables):
            known = ", ".join(ref.alias for ref in self.scope.tables) or "none"
            self.source.fail(f"unknown table or alias {qualifier!r} (tables: {known})", node)
        if not found:
            known = ", ".join(
                f"{ref.alias}.{c}" if len(self.scope.tables) > 1 else c
                for ref in self.scope.tables
                for names, _ in ref.named(qualifier)
                for c in names
            )
            self.source.fail(f"unknown column {name!r} (columns: {known or 'none'})", node)
        if len(found) > 1:
            owners = ", ".join(ref.alias for ref, _ in found)
            self.source.fail(
                f"ambiguous column {name!r}: it is in {owners}; qualify it (alias.{name})", node
            )
        ref, position = found[0]
        shown = f"{ref.alias}.{name}" if len(self.scope.tables) > 1 else name
        return Col(ref.base + position, shown, ref.schema.columns[position].type)

    def _bind_literal(self, node: exp.Literal) -> Expr:
        text = node.this
        if node.is_string:
            return Const(text, STR)
        try:
            return Const(int(text), I64)
        except ValueError:
            pass
        try:
            return Const(float(text), F64)
        except ValueError:
            self.source.fail(f"not a number: {text!r}", node)

    def _bind_boolean(self, node: exp.Boolean) -> Expr:
        return Const(bool(node.this), BOOL)

    def _bind_null(self, node: exp.Null) -> Expr:
        return Const(None)

    def _bind_hexstring(self, node: exp.HexString) -> Expr:
        try:
            value = bytes.fromhex(node.this)
        except ValueError:
            self.source.fail("not a hex blob literal", node)
        return Const(value, type_of_value(value))

    def _bind_placeholder(self, node: exp.Placeholder) -> Expr:
        name = node.name
        if not name or name == "?":
            self.source.fail("use named parameters (:name), not ?", node)
        if name in self.params:
            value = self.params[name]
        elif name == "sender":
            value = self.sender
        else:
            known = ", ".join(sorted({*self.params, "sender"}))
            self.source.fail(f"missing parameter :{name} (given: {known})", node)
        if value is None:
            return Const(None)  # the cache key says this parameter is NULL
        return Param(name, None, type_of_value(value), "", self._placeholder_at(node))

    def _placeholder_at(self, node: exp.Placeholder) -> tuple[int, int, str] | tuple[()]:
        """Where ``:name`` is: SQLGlot gives a placeholder no position, so find its text
        from its parent's (the first occurrence at or after it)."""
        text = self.source.text
        parent = (
            self.source.locate(node.parent) if isinstance(node.parent, exp.Expression) else None
        )
        start = 0
        if parent is not None:
            line, column, _ = parent
            start = sum(len(row) + 1 for row in text.split("\n")[: line - 1]) + column - 1
        found = re.compile(rf":{re.escape(node.name)}\b").search(text, start)
        found = found or re.compile(rf":{re.escape(node.name)}\b").search(text)
        if found is None:
            return self.source.locate(node) or ()
        before = text[: found.start()]
        line = before.count("\n") + 1
        return line, found.start() - (before.rfind("\n") + 1) + 1, found.group()

    def _bind_paren(self, node: exp.Paren) -> Expr:
        return self.bind(node.this)

    # -- operators ---------------------------------------------------------------------

    def _bind_neg(self, node: exp.Neg) -> Expr:
        operand = self.bind(node.this)
        value = operand.value if isinstance(operand, Const) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Const(-value, type_of(operand))
        self._require_number(operand, node.this)
        return Unary("-", operand, type_of(operand))

    def _bind_not(self, node: exp.Not) -> Expr:
        operand = self.bind(node.this)
        if isinstance(operand, IsNull | InList | Between | Like):
            kind = type(operand)
            values = {**operand.__dict__, "negated": not operand.negated}
            return kind(**values)
        return Unary("NOT", operand, BOOL)

    def _bind_and(self, node: exp.And) -> Expr:
        return Binary("AND", self.bind(node.this), self.bind(node.expression), BOOL)

    def _bind_or(self, node: exp.Or) -> Expr:
        return Binary("OR", self.bind(node.this), self.bind(node.expression), BOOL)

    def _bind_is(self, node: exp.Is) -> Expr:
        if isinstance(node.expression, exp.Boolean):
            return bind_is_boolean(self, node)
        if not isinstance(node.expression, exp.Null):
            self.source.fail(
                "only IS [NOT] NULL, IS [NOT] TRUE/FALSE and IS [NOT] <value> are supported", node
            )
        return IsNull(self.bind(node.this))

    def _bind_in(self, node: exp.In) -> Expr:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            self.source.fail("unsupported construct: IN with a subquery", node)
        if row_items(node.this) is not None:
            # (a, b) IN ((1, 2), (3, 4)): TRUE if a row equals, NULL if one might, as OR.
            negated = bool(node.args.get("negate"))
            found: Expr = Const(False, BOOL)
            for item in node.expressions:
                equal = self.compare("=", node.this, item, node)
                found = equal if isinstance(found, Const) else Binary("OR", found, equal, BOOL)
            return Unary("NOT", found, BOOL) if negated else found
        operand = self.bind(node.this)
        negated = bool(node.args.get("negate"))
        bound = [(self.bind(item), item) for item in node.expressions]
        # A text that is no number (or a blob) equals no number: dropped (affinity.py).
        kept = [(value, item) for value, item in bound if not never_a_number(value, operand)]
        if bound and not kept:  # ``x IN ('a')``: FALSE, NULL for a NULL x
            return ordered("<>" if negated else "=", operand, number_on_left=True)
        items = tuple(self._fit(value, operand, item, node.this) for value, item in kept)
        if items and is_null_constant(operand) and not any(map(reads_subquery, items)):
            return Const(None, BOOL)  # ``NULL IN (a, b)`` is NULL: a and b are never read
        return InList(operand, items, negated)

    def _bind_tuple(self, node: exp.Tuple) -> Expr:
        self.source.fail(
            "row value misused: a row value (a, b) may only be compared with another of "
            "the same size (=, <>, <, <=, >, >=, IS, BETWEEN) or be the left of IN",
            node,
        )

    def _bind_between(self, node: exp.Between) -> Expr:
        if row_items(node.this) is not None:
            low = self.compare(">=", node.this, node.args["low"], node)
            high = self.compare("<=", node.this, node.args["high"], node)
            both = Binary("AND", low, high, BOOL)
            return Unary("NOT", both, BOOL) if node.args.get("negate") else both
        operand = self.bind(node.this)
        low_node, high_node = node.args["low"], node.args["high"]
        low = self._fit(self.bind(low_node), operand, low_node, node.this)
        high = self._fit(self.bind(high_node), operand, high_node, node.this)
        if is_null_constant(operand) and not (reads_subquery(low) or reads_subquery(high)):
            return Const(None, BOOL)  # both comparisons NULL: the bounds are never read
        return Between(operand, low, high, bool(node.args.get("negate")))

    def _bind_like(self, node: exp.Like) -> Expr:
        if node.args.get("escape"):
            self.source.fail("unsupported construct: LIKE ... ESCAPE", node)
        operand = self.bind(node.this)
        pattern = self.bind(node.expression)
        for part, where in ((operand, node.this), (pattern, node.expression)):
            if family(type_of(part)) not in (None, "text"):
                self.source.fail(f"type mismatch: LIKE needs text, got {type_of(part)}", where)
        return Like(operand, pattern, bool(node.args.get("negate")))

    def compare(
        self, op: str, left_node: exp.Expression, right_node: exp.Expression, node: Any
    ) -> Expr:
        lefts, rights = row_items(left_node), row_items(right_node)
        if lefts is not None or rights is not None:
            return self._compare_rows(op, lefts, rights, left_node, right_node, node)
        return self._compare_bound(
            op, (self.bind(left_node), left_node), (self.bind(right_node), right_node)
        )

    def _compare_bound(
        self, op: str, left: tuple[Expr, exp.Expression], right: tuple[Expr, exp.Expression]
    ) -> Expr:
        (left_value, left_node), (right_value, right_node) = left, right
        if never_a_number(right_value, left_value):  # SQLite's affinity: affinity.py
            return ordered(op, left_value, number_on_left=True)
        if never_a_number(left_value, right_value):
            return ordered(op, right_value, number_on_left=False)
        right_value = self._fit(right_value, left_value, right_node, left_node)
        left_value = self._fit(left_value, right_value, left_node, right_node)
        return Binary(op, left_value, right_value, BOOL)

    def row_subquery(self, node: exp.Expression, width: int) -> list[Expr]:
        """``(SELECT x, y …)`` as a row value of ``width``: each column of its first
        row. A binder that binds subqueries (``subquery_bind.QueryBinder``) does it."""
        self.source.fail("unsupported construct: a subquery here", node)
        raise AssertionError  # unreachable: fail raises

    def _row_side(
        self, items: list[exp.Expression] | None, whole: exp.Expression, width: int, node: Any
    ) -> list[tuple[Expr, exp.Expression]]:
        """One side of a row-value comparison, bound value by value."""
        if items is not None:
            return [(self.bind(item), item) for item in items]
        single = unparen(whole)
        if not isinstance(single, exp.Subquery):
            self.source.fail(
                "row value misused: a row value compared with a single value "
                "(write (a, b) = (x, y) or (a, b) = (SELECT x, y ...))",
                node,
            )
        return [(value, single) for value in self.row_subquery(single, width)]

    def _compare_rows(
        self,
        op: str,
        lefts: list[exp.Expression] | None,
        rights: list[exp.Expression] | None,
        left_node: exp.Expression,
        right_node: exp.Expression,
        node: Any,
    ) -> Expr:
        """``(a, b) op (c, d)`` as SQLite compares row values, written out over the
        pairs: ``=`` all pairs equal (AND), ``<>`` any differs (OR), ``IS``/``IS NOT``
        likewise, and ``< <= > >=`` by the leftmost pair that is not equal
        (``a < c OR (a = c AND b < d)``), which gives SQLite's NULLs too: a NULL in the
        pair that decides makes the result NULL. A side may be a subquery of as many
        columns: its first row (NULLs for none), as in SQLite."""
        if lefts is not None and rights is not None and len(lefts) != len(rights):
            self.source.fail(
                f"row value misused: rows of {len(lefts)} and {len(rights)} values compared",
                node,
            )
        width = len(lefts if lefts is not None else rights or ())
        pairs = list(
            zip(
                self._row_side(lefts, left_node, width, node),
                self._row_side(rights, right_node, width, node),
                strict=True,
            )
        )
        if op in ("=", "IS"):
            return _fold_logic("AND", [self._compare_bound(op, a, b) for a, b in pairs])
        if op in ("<>", "IS NOT"):
            return _fold_logic("OR", [self._compare_bound(op, a, b) for a, b in pairs])
        strict = op[0]  # < or >
        *rest, (last_a, last_b) = pairs
        result = self._compare_bound(op, last_a, last_b)
        for a, b in reversed(rest):
            equal = self._compare_bound("=", a, b)
            result = Binary(
                "OR",
                self._compare_bound(strict, a, b),
                Binary("AND", equal, result, BOOL),
                BOOL,
            )
        return result

    def _fit(
        self, value: Expr, other: Expr, value_node: exp.Expression, other_node: exp.Expression
    ) -> Expr:
        """Coerce a constant to the other side's type; refuse incomparable types."""
        target = type_of(other)
        if isinstance(value, Param) and target is not None:
            context = f"parameter :{value.name}: {_describe(other)} is {base(target)}"
            return Param(value.name, target, target, context, value.where)
        if isinstance(value, Const) and target is not None and value.value is not None:
            try:
                value = Const(coerce(value.value, target), target)
            except TypeMismatch as exc:
                self.source.fail(
                    f"type mismatch: {_describe(other)} is {base(target)}: {exc}", value_node
                )
        left_family, right_family = family(type_of(value)), family(target)
        if left_family and right_family and left_family != right_family:
            self.source.fail(
                f"type mismatch: cannot compare {base(type_of(value))} with {base(target)} "
                f"({_describe(other)})",
                value_node,
            )
        return value

    def _arithmetic(self, op: str, node: exp.Expression) -> Expr:
        left, right = self.bind(node.this), self.bind(node.expression)
        if op == "||":
            return Binary(op, left, right, STR)
        self._require_number(left, node.this)
        self._require_number(right, node.expression)
        both_int = all(
            isinstance(base(type_of(side)), IntType) or base(type_of(side)) is BOOL
            for side in (left, right)
        )
        result = I64 if both_int else F64
        if (is_null_constant(left) and not reads_subquery(right)) or (
            is_null_constant(right) and not reads_subquery(left)
        ):
            # NULL whatever the other side is, which is then never read (as SQLite
            # never needs it: ``col + CAST(NULL AS INTEGER)`` asks no GROUP BY of col).
            return Const(None, result)
        return Binary(op, left, right, result)

    def _require_number(self, value: Expr, node: exp.Expression) -> None:
        value_type = type_of(value)
        if value_type is not None and not is_numeric(value_type):
            self.source.fail(
                f"type mismatch: arithmetic needs numbers, got {base(value_type)}", node
            )

    def _aggregate(self, func: str, node: exp.Expression) -> Expr:
        if not self.aggregates_allowed:
            self.source.fail(f"aggregate {func}() is not allowed in {self.clause}", node)
        argument, extra = _aggregate_arguments(func, node)
        distinct = isinstance(argument, exp.Distinct)
        if isinstance(argument, exp.Distinct):
            if len(argument.expressions) != 1 or extra:
                self.source.fail(f"{func}(DISTINCT ...) takes one expression", node)
            argument = argument.expressions[0]
        if isinstance(argument, exp.Star):
            if distinct:  # SQLite and PostgreSQL refuse it too: DISTINCT of what?
                self.source.fail(f"{func}(DISTINCT *) is not valid; use COUNT(*)", node)
            if func != "COUNT":
                self.source.fail(f"{func}(*) is not valid; only COUNT(*)", node)
            self.aggregated = True
            return Agg("COUNT", None, False, I64)
        most = 2 if func == "GROUP_CONCAT" else 1
        if argument is None or len(extra) >= most:
            takes = "one or two arguments" if most == 2 else "exactly one argument"
            self.source.fail(f"{func}() takes {takes}", node)
        self.aggregates_allowed = False  # no aggregate inside an aggregate
        try:
            arg = self.bind(argument)
            if extra:  # GROUP_CONCAT(x, separator): the pair, as a row value
                arg = Func("ROW", (arg, self.bind(extra[0])))
        finally:
            self.aggregates_allowed = True
        arg_type = type_of(arg)
        if func in ("SUM", "AVG", "TOTAL"):
            self._require_number(arg, argument)
        result: ColumnType | None
        if func == "COUNT":
            result = I64
        elif func in ("AVG", "TOTAL"):
            result = F64
        elif func == "SUM":
            result = I64 if isinstance(base(arg_type), IntType) else F64
        elif func == "GROUP_CONCAT":
            result = STR
        else:
            result = arg_type
        self.aggregated = True
        return Agg(func, arg, distinct, result)


def _aggregate_arguments(
    func: str, node: exp.Expression
) -> tuple[exp.Expression | None, list[exp.Expression]]:
    """An aggregate call's first argument and the ones after it, whichever node SQLGlot
    made of it (``TOTAL`` is an anonymous call; ``GROUP_CONCAT`` keeps its separator
    apart)."""
    if isinstance(node, exp.Anonymous):
        items = list(node.expressions)
        return (items[0] if items else None), items[1:]
    if isinstance(node, exp.GroupConcat):
        separator = node.args.get("separator")
        return node.this, [] if separator is None else [separator]
    return node.this, list(node.expressions)


def _null_either_way(compared: Binary) -> bool:
    """A comparison with a constant NULL side (and no subquery on the other)."""
    left, right = compared.left, compared.right
    return (is_null_constant(left) and not reads_subquery(right)) or (
        is_null_constant(right) and not reads_subquery(left)
    )


def reads_subquery(expr: Expr) -> bool:
    """Whether ``expr`` holds a subquery (whose errors folding it away would hide)."""
    return type(expr).__name__ == "Subquery" or any(reads_subquery(c) for c in children(expr))


def _fold_logic(op: str, parts: list[Expr]) -> Expr:
    result = parts[0]
    for part in parts[1:]:
        result = Binary(op, result, part, BOOL)
    return result


def _describe(expr: Expr) -> str:
    return f"column {expr.name}" if isinstance(expr, Col) else "the other side"


def _construct(node: exp.Expression) -> str:
    if isinstance(node, exp.Func):
        return f"function {node.sql_name()}()"
    return node.key.upper()
