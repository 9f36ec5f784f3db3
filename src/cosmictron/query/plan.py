"""The plan as data: bound expressions and plan nodes, all frozen dataclasses.

``parse.py`` builds a logical plan from SQLGlot's tree; each pass in ``rules/`` maps a
plan to a better one (pure functions over these values, so a rule's test is an input
plan and an expected plan); ``execute.py`` runs the result. Keeping the plan as plain
data, separate from both parsing and execution, is what lets ``EXPLAIN`` print exactly
what will run and lets the subscription layer reuse the same plans.

Rows flowing through a plan are tuples. A scan yields the table's own row tuples; a join
yields the concatenation of its inputs, so a column of the *i*-th table in ``FROM`` is
found at slot ``base_i + position``. ``Col.slot`` is that absolute slot, except under a
scan's own filter, where it is rebased to the table's row (see ``rules/pushdown.py``).

Why one module: the expressions and the plan nodes are one vocabulary. Plan nodes hold
expressions and expressions hold plans (a ``SemiJoin``'s subplan), so the two halves
would import each other; and every pass, the binder, the executor and the subscription
layer read both. What is here is the data and the structural helpers every reader
needs (children, slots, conjuncts, shifting); how an expression is printed for EXPLAIN
lives in ``render.py``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cosmictron.datastore import ColumnType, TableSchema

# -- expressions --------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """Base of bound expressions; ``type`` is the static type when known (None: NULL)."""


@dataclass(frozen=True)
class Col(Expr):
    slot: int
    name: str
    type: ColumnType | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Const(Expr):
    value: Any
    type: ColumnType | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Param(Expr):
    """A ``:name`` parameter: a slot in the plan, filled with its value per execution.

    ``target`` is the column type the value is coerced to when the statement runs (None:
    used as given); ``context`` and ``where`` (line, column, text of the placeholder)
    make the error if the value does not fit. ``type`` is the static type, which the
    statement cache keys on (see ``query/cache.py``), so plan-time checks stay valid.
    """

    name: str
    target: ColumnType | None = field(default=None, compare=False, repr=False)
    type: ColumnType | None = field(default=None, compare=False, repr=False)
    context: str = field(default="", compare=False, repr=False)
    where: tuple[Any, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Computed:
    """An INSERT value computed from parameters when the statement runs (``:a + 1``)."""

    expr: Expr
    target: ColumnType
    context: str
    where: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Binary(Expr):
    """``op`` is one of + - * / % || = <> < <= > >= AND OR, and IS, IS NOT (the
    comparisons for which NULL equals NULL: never NULL themselves)."""

    op: str
    left: Expr
    right: Expr
    type: ColumnType | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Unary(Expr):
    """``op`` is NOT or - (negation)."""

    op: str
    operand: Expr
    type: ColumnType | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class IsNull(Expr):
    operand: Expr
    negated: bool = False


@dataclass(frozen=True)
class InList(Expr):
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between(Expr):
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True)
class Like(Expr):
    operand: Expr
    pattern: Expr
    negated: bool = False


@dataclass(frozen=True)
class Agg(Expr):
    """An aggregate call; ``arg`` is None for COUNT(*). Only ``Aggregate`` evaluates it."""

    func: str
    arg: Expr | None
    distinct: bool = False
    type: ColumnType | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SemiJoin(Expr):
    """Row-level security across a join: true when the row's ``keys`` are among the rows
    ``plan`` returns (an uncorrelated subplan over the filter's other tables).

    A visibility filter that joins other tables (``visibility.py``) becomes this
    semi-join: ``(m.room_id) IN (SELECT mem.room_id FROM member mem WHERE mem.identity =
    :sender)``. Unlike a join it never repeats a row, however many rows admit it. The
    executor evaluates ``plan`` once per execution (``execute.resolve_semijoins``) and
    checks each row against the resulting set (a ``KeySet``). ``label`` is the filter's
    text, for EXPLAIN; ``occurrences`` names each table the subplan reads (at any
    depth) with the column and value every row of it must have to matter, when one is
    known (``(table, column, value)``; column -1: none), which subscriptions index on.
    With no ``keys``, the row is admitted when ``plan`` returns any row at all.
    """

    keys: tuple[Expr, ...]
    plan: Node = field(repr=True)
    label: str = ""
    occurrences: tuple[tuple[str, int, Expr | None], ...] = ()


@dataclass(frozen=True)
class KeySet(Expr):
    """A ``SemiJoin`` evaluated: true when the row's ``keys`` are in ``values``
    (NULL when a key is NULL, as ``IN`` is)."""

    keys: tuple[Expr, ...]
    values: frozenset[tuple[Any, ...]] = field(repr=False)
    label: str = ""


@dataclass(frozen=True)
class Func(Expr):
    """A call of a scalar function from the registry (``query/functions.py``).

    ``name`` is the registry's name (upper case); ``args`` are in SQLite's argument
    order. The registry says how it is typed, how NULL arguments behave and how it runs,
    so nothing else dispatches on function names.
    """

    name: str
    args: tuple[Expr, ...]
    type: ColumnType | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Case(Expr):
    """``CASE [operand] WHEN w THEN r ... [ELSE default] END``.

    With an ``operand``, a branch is taken when ``operand = w`` is TRUE (NULL matches
    nothing); without, when ``w`` is TRUE. No branch taken and no ``default``: NULL.
    """

    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None
    type: ColumnType | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Cast(Expr):
    """``CAST(operand AS target)``; ``target`` is the type as the conversion knows it:
    an SQLite affinity (INTEGER, REAL, NUMERIC, TEXT, BLOB) or a column type's name."""

    operand: Expr
    target: str
    type: ColumnType | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Subquery(Expr):
    """A subquery inside an expression (``subqueries.py``): ``kind`` is ``scalar`` (its
    first row's only column, or its ``column``-th, NULL for none), ``exists``, or ``in``
    (``operand IN (SELECT ...)``, ``negated`` for NOT IN).

    A correlated subquery reads its outer row through ``args`` (expressions over the
    outer row, like any other operand: the rules shift them, the aggregate rewrite maps
    them); inside ``plan`` each is a ``Param`` named ``names[i]`` (a name with ``#``,
    which no user parameter has), filled per distinct outer value. ``hashed``, when the
    correlation is by equalities only, is the decorrelated form (``decorrelate.py``): a
    plan run once whose rows start with the inner side of each equality, and the name
    of the outer value each is compared with.
    """

    kind: str
    plan: Node = field(repr=True)
    args: tuple[Expr, ...] = ()
    names: tuple[str, ...] = ()
    operand: Expr | None = None
    negated: bool = False
    label: str = ""
    type: ColumnType | None = field(default=None, compare=False, repr=False)
    hashed: tuple[Node, tuple[str, ...]] | None = field(default=None, repr=False)
    # The plan before optimization: what a subscription counts by (subscription/semijoin.py).
    logical: Node | None = field(default=None, compare=False, repr=False)
    # A scalar subquery's column: 0 but for a row value's ``(a, b) = (SELECT x, y …)``,
    # compared pair by pair, each pair reading its column of the first row.
    column: int = 0


@dataclass(frozen=True)
class Evaluated(Expr):
    """A ``Subquery`` ready to run over one snapshot: ``function(row) -> value``."""

    function: Any = field(compare=False, repr=False)
    label: str = ""
    type: ColumnType | None = field(default=None, compare=False, repr=False)


COMPARISONS = frozenset({"=", "<>", "<", "<=", ">", ">="})
FLIPPED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def type_of(expr: Expr) -> ColumnType | None:
    return getattr(expr, "type", None)


def _plan_fields(kind: type) -> tuple[str, ...]:
    """The field names a walk over a plan visits in a value of type ``kind``: every
    field of a plan node, expression or statement (a dataclass of ``cosmictron.query``),
    none of anything else (schemas and column types, shared with the module, or plain
    values). Call it with ``type(value)``.

    The walks over a whole plan (its tables, parameters, weight, subqueries) visit
    every node of a statement's expressions, a thousand for a long WHERE; asking
    ``dataclasses`` each time (``is_dataclass``, ``fields``, the module) cost more
    than the rest of the walk, so the answer is kept per class (a C-level cache hit).
    """
    if not dataclasses.is_dataclass(kind) or not kind.__module__.startswith("cosmictron.query"):
        return ()
    return tuple(f.name for f in dataclasses.fields(kind))


plan_fields: Callable[[type], tuple[str, ...]] = functools.cache(_plan_fields)
"""``_plan_fields``, kept per class: ``plan_fields(type(value))``."""


def children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Unary | IsNull):
        return (expr.operand,)
    if isinstance(expr, InList):
        return (expr.operand, *expr.items)
    if isinstance(expr, Between):
        return (expr.operand, expr.low, expr.high)
    if isinstance(expr, Like):
        return (expr.operand, expr.pattern)
    if isinstance(expr, Agg):
        return () if expr.arg is None else (expr.arg,)
    if isinstance(expr, SemiJoin | KeySet):
        return expr.keys  # the subplan reads its own rows, not this row's slots
    if isinstance(expr, Func):
        return expr.args
    if isinstance(expr, Case):
        parts = [] if expr.operand is None else [expr.operand]
        for when, then in expr.whens:
            parts += [when, then]
        return (*parts, *([] if expr.default is None else [expr.default]))
    if isinstance(expr, Cast):
        return (expr.operand,)
    if isinstance(expr, Subquery):
        return expr.args if expr.operand is None else (expr.operand, *expr.args)
    return ()


def map_children(expr: Expr, function: Callable[[Expr], Expr]) -> Expr:
    """``expr`` with ``function`` applied to each direct child (for the node types
    added with the function registry: Func, Case, Cast); other nodes come back as they
    are, their owners rebuild them.

    >>> map_children(Func("ABS", (Col(1, "x"),)), lambda e: Const(2))
    Func(name='ABS', args=(Const(value=2),))
    """
    if isinstance(expr, Func):
        return Func(expr.name, tuple(function(arg) for arg in expr.args), expr.type)
    if isinstance(expr, Case):
        operand = None if expr.operand is None else function(expr.operand)
        whens = tuple((function(when), function(then)) for when, then in expr.whens)
        default = None if expr.default is None else function(expr.default)
        return Case(operand, whens, default, expr.type)
    if isinstance(expr, Cast):
        return Cast(function(expr.operand), expr.target, expr.type)
    return expr


def slots(expr: Expr) -> set[int]:
    """Every slot an expression reads.

    >>> sorted(slots(Binary("=", Col(3, "a.x"), Col(0, "b.y"))))
    [0, 3]
    """
    if isinstance(expr, Col):
        return {expr.slot}
    found: set[int] = set()
    for child in children(expr):
        found |= slots(child)
    return found


def conjuncts(expr: Expr | None) -> list[Expr]:
    """Split a predicate on AND.

    >>> conjuncts(Binary("AND", Col(0, "a"), Binary("AND", Col(1, "b"), Col(2, "c"))))
    [Col(slot=0, name='a'), Col(slot=1, name='b'), Col(slot=2, name='c')]
    """
    if expr is None:
        return []
    if isinstance(expr, Binary) and expr.op == "AND":
        return conjuncts(expr.left) + conjuncts(expr.right)
    return [expr]


def conjoin(parts: list[Expr]) -> Expr | None:
    """The AND of ``parts`` (None for none): the inverse of ``conjuncts``."""
    if not parts:
        return None
    result = parts[0]
    for part in parts[1:]:
        result = Binary("AND", result, part)
    return result


def shift(expr: Expr, delta: int) -> Expr:
    """The same expression with every slot moved by ``delta`` (rebasing onto a scan).

    >>> shift(Binary("=", Col(5, "b.x"), Const(1)), -4)
    Binary(op='=', left=Col(slot=1, name='b.x'), right=Const(value=1))
    """
    if isinstance(expr, Col):
        return Col(expr.slot + delta, expr.name, expr.type)
    if isinstance(expr, Binary):
        return Binary(expr.op, shift(expr.left, delta), shift(expr.right, delta), expr.type)
    if isinstance(expr, Unary):
        return Unary(expr.op, shift(expr.operand, delta), expr.type)
    if isinstance(expr, IsNull):
        return IsNull(shift(expr.operand, delta), expr.negated)
    if isinstance(expr, InList):
        items = tuple(shift(item, delta) for item in expr.items)
        return InList(shift(expr.operand, delta), items, expr.negated)
    if isinstance(expr, Between):
        return Between(
            shift(expr.operand, delta),
            shift(expr.low, delta),
            shift(expr.high, delta),
            expr.negated,
        )
    if isinstance(expr, Like):
        return Like(shift(expr.operand, delta), shift(expr.pattern, delta), expr.negated)
    if isinstance(expr, Agg):
        arg = None if expr.arg is None else shift(expr.arg, delta)
        return Agg(expr.func, arg, expr.distinct, expr.type)
    if isinstance(expr, SemiJoin | KeySet):
        return replace(expr, keys=tuple(shift(key, delta) for key in expr.keys))
    if isinstance(expr, Func | Case | Cast):
        return map_children(expr, lambda child: shift(child, delta))
    if isinstance(expr, Subquery):
        operand = None if expr.operand is None else shift(expr.operand, delta)
        return replace(expr, operand=operand, args=tuple(shift(a, delta) for a in expr.args))
    return expr


# -- plan nodes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Base of plan nodes."""


@dataclass(frozen=True)
class Scan(Node):
    """Every row of one table; ``base`` is where its columns start in a joined row."""

    table: TableSchema = field(compare=False)
    alias: str
    base: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.table.name)


@dataclass(frozen=True)
class IndexScan(Node):
    """Rows of one table found through an index (``index`` None: the primary key).

    ``mode`` is ``eq`` (``values[0]`` is the key), ``in`` (each of ``values``),
    ``prefix`` (``values[0]`` is a key prefix), ``range`` (``values`` is
    ``(low, high, high_inclusive)``; None leaves a side open; ``low`` is inclusive) or
    ``prefix_range`` (``(prefix, low, high, high_inclusive)``: keys starting with
    ``prefix`` whose next column is in the range).
    """

    table: TableSchema = field(compare=False)
    alias: str
    index: str | None
    columns: tuple[str, ...]
    mode: str
    values: tuple[Any, ...]
    base: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.table.name)


@dataclass(frozen=True)
class Filter(Node):
    child: Node
    predicate: Expr


@dataclass(frozen=True)
class Join(Node):
    """A logical join (``kind`` INNER or LEFT); ``rules/joins.py`` picks an algorithm."""

    kind: str
    left: Node
    right: Node
    condition: Expr | None


@dataclass(frozen=True)
class NestedLoopJoin(Node):
    kind: str
    left: Node
    right: Node
    condition: Expr | None


@dataclass(frozen=True)
class HashJoin(Node):
    """Build a hash table of ``right`` on ``right_keys`` (rebased to the right row)."""

    kind: str
    left: Node
    right: Node
    left_keys: tuple[Expr, ...]
    right_keys: tuple[Expr, ...]
    residual: Expr | None


@dataclass(frozen=True)
class IndexNestedLoopJoin(Node):
    """For each left row, look ``left_key`` up in the inner table's index."""

    kind: str
    left: Node
    inner: Scan
    index: str | None
    column: str
    left_key: Expr
    inner_filter: Expr | None
    residual: Expr | None


class OrderMemo:
    """The join orders a ``JoinGroup`` chose, by the table sizes they were chosen for.

    Deliberately not a dataclass: plan walkers (binding, weighing, listing tables) pass
    it by as a value, so a prepared statement and each of its bindings share it. It
    therefore holds only what does not depend on parameter values: the order and its
    estimates, and the physical plan only when the group has no parameters
    (``reusable``). See ``join_order.py``.
    """

    __slots__ = ("plans", "reusable")

    def __init__(self, reusable: bool = False) -> None:
        self.plans: dict[Any, Any] = {}
        self.reusable = reusable

    def __repr__(self) -> str:
        return "OrderMemo()"


@dataclass(frozen=True)
class JoinGroup(Node):
    """Inner joins whose order is chosen by cost when the plan runs (``join_order.py``).

    ``relations`` are the tables in FROM order, each a ``Scan`` or a ``Filter`` over one
    (its own conditions, rebased to its row); ``conditions`` are the conjuncts relating
    two or more of them, over the joined row in FROM order. Whatever order the group
    runs in, it yields rows laid out in FROM order, so nothing above it changes. The
    order depends on the tables' sizes, known only against a datastore: the executor
    and ``EXPLAIN`` choose it then, and ``memo`` keeps the choice per size bucket.
    """

    relations: tuple[Node, ...]
    conditions: tuple[Expr, ...]
    memo: OrderMemo = field(default_factory=OrderMemo, compare=False, repr=False)


@dataclass(frozen=True)
class Aggregate(Node):
    """Output rows: the group values, then the aggregates, in order."""

    child: Node
    groups: tuple[Expr, ...]
    aggregates: tuple[Agg, ...]


@dataclass(frozen=True)
class Project(Node):
    """``exprs[:width]`` are the output columns; the rest are hidden sort keys."""

    child: Node
    exprs: tuple[Expr, ...]
    width: int


@dataclass(frozen=True)
class Distinct(Node):
    child: Node
    width: int


@dataclass(frozen=True)
class Sort(Node):
    """Sort on slots of the projected row; NULLs first ascending, last descending.

    ``nulls_first`` (one flag per key, when given) overrides where NULLs go:
    ``NULLS FIRST`` / ``NULLS LAST``.
    """

    child: Node
    keys: tuple[tuple[int, bool], ...]
    labels: tuple[str, ...] = ()
    nulls_first: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Limit(Node):
    """A negative ``limit`` means none (as in SQLite); a negative ``offset`` is 0."""

    child: Node
    limit: Any
    offset: Any

    def __post_init__(self) -> None:
        if type(self.limit) is int and self.limit < 0:
            object.__setattr__(self, "limit", None)
        if type(self.offset) is int and self.offset < 0:
            object.__setattr__(self, "offset", 0)


@dataclass(frozen=True)
class Values(Node):
    """One row of no columns: the FROM of a SELECT without FROM (``SELECT 1 + 1``)."""


@dataclass(frozen=True)
class Derived(Scan):
    """A subquery or CTE in FROM, read like a table: ``table`` describes its columns
    (no keys, no indexes, so the rules treat it as a plain scan) and ``plan`` makes its
    rows. A ``Scan`` so that the FROM chain, the pushdown and the join rules need not
    know about it; it reads no stored table named ``name``."""

    plan: Node | None = field(default=None)


@dataclass(frozen=True)
class Compound(Node):
    """``left op right``: ``op`` UNION, INTERSECT or EXCEPT; ``all`` keeps duplicates
    (UNION ALL). Rows are ``width`` wide; ORDER BY/LIMIT on the whole sit above it."""

    op: str
    all: bool
    left: Node
    right: Node
    width: int


@dataclass(frozen=True)
class Recursive(Node):
    """A ``WITH RECURSIVE`` CTE (``recursive.py``): ``base``'s rows, then ``step`` run
    again over the rows the last round added (its ``Working`` node named ``key``) until
    a round adds none. ``all`` keeps duplicates (UNION ALL); else a row seen before is
    not added again (UNION). ``limit``/``offset``: the CTE's own LIMIT and OFFSET.

    ``queue`` runs it as SQLite does, one row at a time (``Working`` holds that row):
    taken first in, first out, or by ``order`` when the CTE has an ORDER BY (each term
    ``(column position, descending, NULLs first)``), the step run over that row alone.
    It is used when the rows could differ from rounds': an ORDER BY (with LIMIT, it
    decides which rows are made) or a DISTINCT step (distinct per row, not per round)."""

    name: str
    key: str
    base: Node
    step: Node
    all: bool
    width: int
    limit: int | None = None
    offset: int = 0
    queue: bool = False
    order: tuple[tuple[int, bool, bool], ...] = ()


@dataclass(frozen=True)
class Working(Node):
    """The recursive CTE's reference to itself inside its step: the rows the last round
    added, filled in (``rows``) before each round runs."""

    key: str
    width: int
    rows: tuple[tuple[Any, ...], ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Subqueries(Node):
    """Marks a plan whose expressions hold ``Subquery`` values: each run first makes
    them ``Evaluated`` over its snapshot (``subquery_run.py``), then runs ``child``."""

    child: Node


def node_children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Compound):
        return (node.left, node.right)
    if isinstance(node, Join | NestedLoopJoin | HashJoin):
        return (node.left, node.right)
    if isinstance(node, IndexNestedLoopJoin):
        return (node.left, node.inner)
    if isinstance(node, JoinGroup):
        return node.relations
    child = getattr(node, "child", None)
    return () if child is None else (child,)
