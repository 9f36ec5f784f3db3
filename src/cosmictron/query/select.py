"""Build the logical plan of one SELECT, in SQL's evaluation order.

FROM and JOIN make a left-deep chain of ``Join`` over ``Scan``; then WHERE (``Filter``),
GROUP BY/aggregates (``Aggregate``) and HAVING (``Filter``), the SELECT list
(``Project``), DISTINCT, ORDER BY (``Sort``) and LIMIT/OFFSET (``Limit``). The rules
then reshape the FROM/WHERE part; everything above it runs as built.

ORDER BY may name an output column (by alias or position) or any expression; one that is
not an output column is projected as a hidden column after the outputs, sorted on, and
dropped at the end. After aggregation, expressions are rewritten to read the aggregate's
output row: a GROUP BY expression or an aggregate call becomes a slot of that row, and a
bare column that is neither is an error (SQLite would pick an arbitrary row's value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlglot import exp

from cosmictron.datastore import ColumnSchema, ModuleSchema, TableSchema
from cosmictron.query.plan import (
    Agg,
    Aggregate,
    Between,
    Binary,
    Col,
    Const,
    Derived,
    Distinct,
    Expr,
    Filter,
    InList,
    IsNull,
    Join,
    Like,
    Limit,
    Node,
    Param,
    Project,
    Recursive,
    Scan,
    Sort,
    Subqueries,
    Subquery,
    Unary,
    Values,
    Working,
    children,
    map_children,
    type_of,
)
from cosmictron.query.position import Source
from cosmictron.query.render import render
from cosmictron.query.resolve import Binder, InnerTable, Scope, TableRef
from cosmictron.query.rules import optimize
from cosmictron.query.subquery_bind import Nested, Outer, QueryBinder
from cosmictron.query.views import View
from cosmictron.query.visibility import VisibilityRule, restriction
from cosmictron.values import Identity


def _view(node: exp.Table, context: Context, refs: list[TableRef], reads: set[str]) -> Scan:
    """A view named in FROM: its body built as a query of its own (``views.py``), with
    the caller's visibility filters, no CTE or outer column of this query in scope, and
    every view but itself (so a cycle of views ends in an unknown name)."""
    view = context.views[node.name]
    alias = node.alias or node.name
    _new_alias(alias, refs, context.source, node)
    inner = replace(
        context,
        source=view.source,
        ctes={},
        views={n: v for n, v in context.views.items() if n != view.name},
    )
    built = inner.build(view.query, None, inner)
    names_out = list(view.columns or built.columns)
    if len(names_out) != len(built.columns):
        context.source.fail(
            f"view {view.name} names {len(names_out)} columns but its query now gives "
            f"{len(built.columns)}",
            node,
        )
    return _read_as_table(alias, names_out, built, refs, reads)


@dataclass(frozen=True)
class Context:
    """What every query of one statement shares: the schema and the caller, the
    visibility filters to apply, the CTEs in scope, the builder for nested queries
    (``compound.build_query``) and the counter naming outer values."""

    schema: ModuleSchema
    source: Source
    params: Mapping[str, Any]
    sender: Identity
    rules: Mapping[str, tuple[VisibilityRule, ...]]
    build: Callable[[exp.Expression, Outer | None, Context], Nested]
    counter: list[int]
    ctes: Mapping[str, exp.CTE] = field(default_factory=dict)
    views: Mapping[str, View] = field(default_factory=dict)
    recursive: frozenset[str] = frozenset()
    """The CTEs of a ``WITH RECURSIVE`` in scope: each may read itself."""
    working: Mapping[str, tuple[str, tuple[ColumnSchema, ...]]] = field(default_factory=dict)
    """Inside a recursive CTE's step: its name -> (its ``Working`` key, its columns)."""


def build_select(node: exp.Select, context: Context, outer: Outer | None = None) -> Nested:
    """The logical plan of ``node`` (rules not yet applied).

    ``context.rules`` are the visibility filters to apply (a non-owner reads): each
    occurrence of a filtered table gets its restriction, in WHERE or, for a LEFT JOIN's
    right side, in the ON condition (see ``visibility.py``), in subqueries too.
    ``outer`` is the enclosing query's binder when ``node`` is a subquery.
    """
    source = context.source
    rules = context.rules
    for unsupported in ("windows", "qualify", "into", "laterals", "pivots"):
        if node.args.get(unsupported):
            source.fail(f"unsupported construct: {unsupported.upper()}", node)
    if isinstance(node.args.get("distinct"), exp.Distinct) and node.args["distinct"].args.get("on"):
        source.fail("unsupported construct: DISTINCT ON", node)
    context = with_ctes(node, context)
    binder = QueryBinder(
        source,
        Scope([]),
        context.params,
        context.sender,
        build=lambda query, enclosing: context.build(query, enclosing, context),
        counter=context.counter,
        outer=outer,
        transparent=isinstance(outer, _EnclosingOnly),
    )
    from_clause = node.args.get("from_") or node.args.get("from")
    first, joins = _flat_from(
        None if from_clause is None else from_clause.this, node.args.get("joins") or []
    )
    refs: list[TableRef] = []
    reads: set[str] = set()
    hidden_rows: list[Expr] = []
    plan: Node
    if first is None:
        plan = Values()
    else:
        plan = _scan(first, context, refs, binder, reads)
        binder.scope = Scope(list(refs))
        if refs[0].schema.name in rules and not isinstance(plan, Derived):
            hidden_rows.append(
                restriction(rules[refs[0].schema.name], refs[0], context.sender, rules)
            )
    for join in joins:
        if from_clause is None:
            source.fail("a JOIN needs a FROM clause", join)
        plan = _join(join, plan, context, refs, binder, hidden_rows, reads)
    binder.scope = Scope(list(refs))
    binder.clause = "WHERE"
    where = node.args.get("where")
    condition = None if where is None else binder.bind(where.this)
    for restricted in reversed(hidden_rows):  # the filters first: they run before WHERE's
        condition = restricted if condition is None else Binary("AND", restricted, condition)
    if condition is not None:
        plan = Filter(plan, condition)
    outputs, names = _select_list(node, binder, refs, source)
    group_node = node.args.get("group")
    having_node = node.args.get("having")
    binder.aggregates_allowed = True
    binder.clause = "ORDER BY"
    nulls_first: list[bool] = []
    order_keys, hidden, labels = _order(node, binder, outputs, names, source, nulls_first)
    groups: list[Expr] = []
    if group_node is not None:
        binder.aggregates_allowed = False
        binder.clause = "GROUP BY"
        for item in group_node.expressions:
            groups.append(_group_item(item, binder, outputs, names, source))
    having = None
    if having_node is not None:
        binder.aggregates_allowed = True
        having = binder.bind(having_node.this)
    every = [*outputs, *hidden, *([having] if having is not None else [])]
    if groups or binder.aggregated or any(_has_aggregate(e) for e in every):
        aggregates: list[Agg] = []
        rewrite = _Rewriter(groups, aggregates, source, node)
        outputs = [rewrite(e) for e in outputs]
        hidden = [rewrite(e) for e in hidden]
        if having is not None:
            having = _Rewriter(groups, aggregates, source, node, bare=True)(having)
        plan = Aggregate(plan, tuple(groups), tuple(aggregates))
        if having is not None:
            plan = Filter(plan, having)
    elif having is not None:
        source.fail("HAVING needs GROUP BY or an aggregate", having_node)
    plan = Project(plan, tuple(outputs) + tuple(hidden), len(outputs))
    if node.args.get("distinct"):
        plan = Distinct(plan, len(outputs))
    if order_keys:
        pairs = zip(nulls_first, order_keys, strict=True)
        overridden = any(first == desc for first, (_, desc) in pairs)
        plan = Sort(
            plan, tuple(order_keys), tuple(labels), tuple(nulls_first) if overridden else ()
        )
    plan = limit(node, plan, binder, source)
    if binder.subqueries:
        plan = Subqueries(plan)
    tables = {ref.schema.name for ref in refs if not isinstance(ref.schema, DerivedTable)}
    star_only = [_star_table(item) for item in node.expressions] == ["*"]
    return Nested(
        plan,
        tuple(names),
        tuple(type_of(e) for e in outputs),
        frozenset(tables | reads | binder.reads),
        tuple(binder.correlated),
        # ``SELECT *``: where each table's columns are among the output (``_joined``).
        tuple(InnerTable(r.alias, r.schema.column_names, r.base) for r in refs)
        if star_only
        else (),
    )


def with_ctes(node: exp.Expression, context: Context) -> Context:
    """``context`` with the CTEs of ``node``'s WITH in scope (each sees those before it)."""
    clause = node.args.get("with_") or node.args.get("with")
    if clause is None:
        return context
    ctes = dict(context.ctes)
    for cte in clause.expressions:
        name = cte.alias
        if name in ctes and ctes[name] is not context.ctes.get(name):
            context.source.fail(f"the WITH clause names {name!r} twice", cte)
        ctes[name] = cte
    recursive = context.recursive
    if clause.args.get("recursive"):
        recursive = recursive | {cte.alias for cte in clause.expressions}
    else:
        recursive = recursive - {cte.alias for cte in clause.expressions}
    return replace(context, ctes=ctes, recursive=recursive)


def _group(
    node: exp.Expression | None, first: bool = False
) -> tuple[exp.Expression, list[exp.Join]] | None:
    """``( a CROSS JOIN b ... )`` in FROM, a parenthesised group of joins without an
    alias (groups may nest): its first table and its joins; None for anything else.

    A group ``first`` in FROM may hold any joins, outer ones included: joins associate
    to the left, so ``(a LEFT JOIN b ON x) JOIN c ON y`` is ``a LEFT JOIN b ON x JOIN c
    ON y`` whatever the joins are. A group after the first table is read flat only when
    it holds inner joins alone (``a LEFT JOIN (b JOIN c)`` is not ``a LEFT JOIN b JOIN
    c``)."""
    if not isinstance(node, exp.Subquery) or node.alias:
        return None
    inner = node.this
    if isinstance(inner, exp.Table):
        head: exp.Expression = inner
        joins: list[exp.Join] = []
    else:
        found = _group(inner, first)
        if found is None:
            return None
        head, joins = found
    joins = [*joins, *(inner.args.get("joins") or [])]
    if not first and not all(_inner(join) for join in joins):
        return None
    return head, joins


def _inner(join: exp.Join) -> bool:
    return (
        not join.side
        and (join.kind or "").upper() in ("", "INNER", "CROSS")
        and not join.args.get("using")
    )


def _flat_from(
    first: exp.Expression | None, joins: list[exp.Join]
) -> tuple[exp.Expression | None, list[exp.Join]]:
    """FROM with parenthesised groups of inner joins written out flat, as SQLite reads
    them: ``(a CROSS JOIN b) JOIN c ON x`` is ``a CROSS JOIN b JOIN c ON x``, and
    ``a JOIN (b JOIN c ON y) ON x`` is ``a JOIN b JOIN c ON y AND x`` (for inner joins
    the grouping and the place of an ON condition do not change the rows). The syntax
    tree is not changed: the joins made are new nodes over copies."""
    if first is None or (
        _group(first, first=True) is None and not any(_group(j.this) for j in joins)
    ):
        return first, joins
    flat: list[exp.Join] = []
    group = _group(first, first=True)
    if group is not None:
        first, inner = _flat_from(*group)
        flat.extend(inner)
    for join in joins:
        group = _group(join.this)
        if group is None or not _inner(join):
            flat.append(join)
            continue
        head, inner = _flat_from(*group)
        assert head is not None
        flat.append(exp.Join(this=head.copy(), kind="CROSS"))
        on = join.args.get("on")
        if on is not None:
            if not inner:
                inner = [exp.Join(this=flat.pop().this, on=on.copy())]
            else:
                last = inner[-1]
                own = last.args.get("on")
                both = on.copy() if own is None else exp.And(this=own.copy(), expression=on.copy())
                inner = [*inner[:-1], exp.Join(this=last.this.copy(), on=both)]
        flat.extend(inner)
    return first, flat


def _scan(
    table: exp.Expression,
    context: Context,
    refs: list[TableRef],
    binder: QueryBinder,
    reads: set[str],
) -> Scan:
    source, schema = context.source, context.schema
    if isinstance(table, exp.Subquery) and isinstance(table.this, exp.Table | exp.Subquery):
        return _joined(table, context, refs, binder, reads)
    if isinstance(table, exp.Table) and not table.args.get("db") and table.name in context.working:
        return _working(table, context, refs)
    if isinstance(table, exp.Subquery) or (
        isinstance(table, exp.Table) and not table.args.get("db") and table.name in context.ctes
    ):
        return _derived(table, context, refs, binder, reads)
    if (
        isinstance(table, exp.Table)
        and not table.args.get("db")
        and table.name in context.views
        and schema.table(table.name) is None
    ):
        return _view(table, context, refs, reads)
    if not isinstance(table, exp.Table) or table.args.get("db") or not table.name:
        source.fail("unsupported construct: FROM needs a table name or a subquery", table)
    table_schema = schema.table(table.name)
    if table_schema is None:
        known = ", ".join(sorted(t.name for t in schema.tables)) or "none"
        if context.views:
            known += "; views: " + ", ".join(sorted(context.views))
        source.fail(f"unknown table {table.name!r} (tables: {known})", table)
    alias = table.alias or table.name
    _new_alias(alias, refs, source, table)
    base = sum(len(ref.schema.columns) for ref in refs)
    refs.append(TableRef(alias, table_schema, base))
    return Scan(table_schema, alias, base)


def _joined(
    node: exp.Subquery,
    context: Context,
    refs: list[TableRef],
    binder: QueryBinder,
    reads: set[str],
) -> Scan:
    """A parenthesised join that cannot be read flat (``_flat_from``): one given an alias,
    ``(a JOIN b ON …) AS j``, or after the first table one holding or on the right of
    an outer join. SQLite reads it as the subquery ``SELECT * FROM a JOIN b ON …``
    (its "nested FROM"), and so does this: its columns are the tables' columns, a
    repeated name made unique as SQLite makes it (``x``, ``x:1``), and the tables' own
    names still name them (``a.x`` as well as ``j.x``). Without an alias only the
    tables' names and the columns' name it."""
    group = node.this.copy()
    joins = group.args.get("joins") or []
    group.set("joins", None)
    query = exp.select("*").from_(group, copy=False)
    query.set("joins", joins)
    alias = node.alias or f"subquery_{len(refs) + 1}"
    _new_alias(alias, refs, context.source, node)
    built = context.build(query, _EnclosingOnly(binder), context)
    return _read_as_table(alias, _unique_names(built.columns), built, refs, reads, built.inner)


def _read_as_table(
    alias: str,
    names: list[str],
    built: Nested,
    refs: list[TableRef],
    reads: set[str],
    inner: tuple[InnerTable, ...] = (),
) -> Scan:
    """A query built for FROM (a subquery, CTE, view or parenthesised join) as the
    table ``alias`` after the tables before it, its columns called ``names``."""
    table = DerivedTable(
        alias, tuple(ColumnSchema(n, t) for n, t in zip(names, built.types, strict=True))
    )
    reads.update(built.tables)
    base = sum(len(ref.schema.columns) for ref in refs)
    refs.append(TableRef(alias, table, base, inner))
    return Derived(table, alias, base, alias, optimize(built.plan))


def _unique_names(names: tuple[str, ...]) -> list[str]:
    """Column names made unique as SQLite makes a subquery's (``sqlite3ColumnsFromExprList``):
    a name already taken (in any case) gets ``:1``, ``:2``, … in place of any such
    suffix it had."""
    taken: set[str] = set()
    unique = []
    for name in names:
        count = 0
        while name.lower() in taken:
            stem = name.rsplit(":", 1)[0] if name.rsplit(":", 1)[-1].isdigit() else name
            count += 1
            name = f"{stem}:{count}"
        taken.add(name.lower())
        unique.append(name)
    return unique


def _new_alias(alias: str, refs: list[TableRef], source: Source, node: exp.Expression) -> None:
    if any(ref.alias == alias for ref in refs):
        source.fail(f"table or alias {alias!r} appears twice in FROM; give one an alias", node)


def _derived(
    node: exp.Expression,
    context: Context,
    refs: list[TableRef],
    binder: QueryBinder,
    reads: set[str],
) -> Scan:
    """A subquery or CTE in FROM: built as a query of its own, read as a table.

    Each reference to a CTE is built again, so each gets its visibility filters as any
    query does. A FROM subquery cannot see the tables beside it (no LATERAL), but may
    read the enclosing query's columns when it is itself inside a subquery.
    """
    source = context.source
    columns_named: list[str] = []
    if isinstance(node, exp.Subquery):
        query = node.this
        alias = node.alias or f"subquery_{len(refs) + 1}"
        inner_context = context
    else:
        cte = context.ctes[node.name]
        query = cte.this
        alias = node.alias or node.name
        declared = cte.args.get("alias")
        columns = None if declared is None else declared.args.get("columns")
        columns_named = [c.name for c in columns or []]
        # A CTE sees the CTEs declared before it, not itself (no recursion).
        names = list(context.ctes)
        before = {n: context.ctes[n] for n in names[: names.index(node.name)]}
        inner_context = replace(context, ctes=before)
    _new_alias(alias, refs, source, node)
    if (
        isinstance(node, exp.Table)
        and node.name in context.recursive
        and _reads_table(query, node.name)
    ):
        built = _recursive(node.name, query, columns_named, inner_context, binder)
    else:
        built = inner_context.build(query, _EnclosingOnly(binder), inner_context)
    names_out = list(built.columns)
    if columns_named:
        if len(columns_named) != len(names_out):
            source.fail(
                f"table {alias} has {len(names_out)} values for {len(columns_named)} columns",
                node,
            )
        names_out = columns_named
    return _read_as_table(alias, names_out, built, refs, reads)


def _reads_table(query: exp.Expression, name: str) -> bool:
    return any(t.name == name and not t.args.get("db") for t in query.find_all(exp.Table))


def _recursive(
    name: str,
    query: exp.Expression,
    columns_named: list[str],
    context: Context,
    binder: QueryBinder,
) -> Nested:
    """A ``WITH RECURSIVE`` CTE that reads itself, as a ``Recursive`` plan
    (``recursive.py``): ``initial UNION [ALL] step [ORDER BY …] [LIMIT …]``, where
    ``step`` reads the CTE once, in its FROM, and does not aggregate (SQLite refuses
    that: "recursive aggregate queries not supported"). The CTE's ORDER BY, or a
    DISTINCT step, makes it run as SQLite runs it, one row at a time from a queue."""
    source = context.source
    if not isinstance(query, exp.Union):
        source.fail(
            f"recursive CTE {name}: its query must be <initial select> UNION [ALL] "
            f"<recursive select>",
            query,
        )
    initial, step = query.this, query.expression
    if _reads_table(initial, name):
        source.fail(
            f"recursive CTE {name}: only its last SELECT may read {name} "
            f"(one recursive select after UNION [ALL])",
            initial,
        )
    mentions = [t for t in step.find_all(exp.Table) if t.name == name and not t.args.get("db")]
    if (
        not isinstance(step, exp.Select)
        or len(mentions) != 1
        or mentions[0].parent_select is not step
    ):
        source.fail(
            f"recursive CTE {name}: its recursive select must read {name} exactly once, "
            f"in its own FROM (not in a subquery)",
            step,
        )
    if (
        step.args.get("group")
        or step.args.get("having")
        or any(agg.parent_select is step for agg in step.find_all(exp.AggFunc))
        or any(
            a.parent_select is step and str(a.name).upper() in ("TOTAL", "GROUP_CONCAT")
            for a in step.find_all(exp.Anonymous)
        )
    ):
        source.fail(
            f"recursive CTE {name}: its recursive select may not aggregate (GROUP BY, "
            f"HAVING or an aggregate function; SQLite: recursive aggregate queries not "
            f"supported); aggregate in the initial select, a subquery, or over the CTE",
            step,
        )
    for part in ("order", "limit", "offset", "with_", "with"):
        if step.args.get(part):  # only a parenthesised step can hold its own
            what = {"with_": "WITH"}.get(part, part.upper())
            source.fail(
                f"unsupported construct: {what} in the recursive select of {name} (an "
                f"ORDER BY or LIMIT after it applies to the whole CTE)",
                step,
            )
    enclosing = _EnclosingOnly(binder)
    first = context.build(initial, enclosing, context)
    names_out = columns_named or list(first.columns)
    if len(names_out) != len(first.columns):
        source.fail(
            f"table {name} has {len(first.columns)} values for {len(names_out)} columns", query
        )
    context.counter[0] += 1
    key = f"{name}#{context.counter[0]}"
    columns = tuple(ColumnSchema(n, t) for n, t in zip(names_out, first.types, strict=True))
    inner = replace(context, working={**context.working, name: (key, columns)})
    second = inner.build(step, enclosing, inner)
    if len(second.columns) != len(first.columns):
        source.fail(
            f"SELECTs to the left and right of UNION do not have the same number of "
            f"result columns ({len(first.columns)} and {len(second.columns)})",
            query,
        )
    limit_count, offset_count = _recursive_bounds(query, source)
    order = _recursive_order(name, query, list(first.columns), source)
    width = len(first.columns)
    plan = Recursive(
        name,
        key,
        optimize(first.plan),
        optimize(second.plan),
        not query.args.get("distinct"),
        width,
        limit_count,
        offset_count,
        queue=bool(order) or bool(step.args.get("distinct")),
        order=order,
    )
    types = tuple(a if a is not None else b for a, b in zip(first.types, second.types, strict=True))
    return Nested(
        plan,
        tuple(names_out),
        types,
        first.tables | second.tables,
        first.correlated + second.correlated,
    )


def _recursive_order(
    name: str, query: exp.Expression, columns: list[str], source: Source
) -> tuple[tuple[int, bool, bool], ...]:
    """A recursive CTE's ORDER BY, the order its queue gives rows up in: each term a
    result column, by position (``1``) or by the initial select's name for it (as
    SQLite names a compound's columns, not by the CTE's column list), as (position,
    descending, NULLs first); SQLite's NULLs are first ascending, last descending."""
    clause = query.args.get("order")
    if clause is None:
        return ()
    terms = []
    for ordered in clause.expressions:
        term = ordered.this
        position: int | None = None
        if isinstance(term, exp.Literal) and not term.is_string and term.this.isdigit():
            position = int(term.this) - 1
            if not 0 <= position < len(columns):
                source.fail(
                    f"ORDER BY term out of range - should be between 1 and {len(columns)} "
                    f"(recursive CTE {name})",
                    term,
                )
        elif isinstance(term, exp.Column) and not term.table and term.name in columns:
            position = columns.index(term.name)
        if position is None:
            source.fail(
                f"ORDER BY of recursive CTE {name} must name a result column "
                f"({', '.join(columns)}) or give its position",
                term,
            )
        descending = bool(ordered.args.get("desc"))
        nulls_first = ordered.args.get("nulls_first")
        nulls_first = (not descending) if nulls_first is None else bool(nulls_first)
        terms.append((position, descending, nulls_first))
    return tuple(terms)


def _recursive_bounds(query: exp.Expression, source: Source) -> tuple[int | None, int]:
    """A recursive CTE's own LIMIT and OFFSET: integer literals (a negative LIMIT: none)."""
    found: list[int | None] = []
    for part in ("limit", "offset"):
        clause = query.args.get(part)
        if clause is None:
            found.append(None)
            continue
        value = clause.expression
        negative = isinstance(value, exp.Neg)
        literal = value.this if negative else value
        if not isinstance(literal, exp.Literal) or literal.is_string or not literal.this.isdigit():
            source.fail(f"{part.upper()} of a recursive CTE takes an integer literal", clause)
        number = -int(literal.this) if negative else int(literal.this)
        found.append(number)
    limit_count, offset_count = found
    if limit_count is not None and limit_count < 0:
        limit_count = None
    return limit_count, max(offset_count or 0, 0)


def _working(table: exp.Table, context: Context, refs: list[TableRef]) -> Scan:
    """The recursive CTE read inside its own step: the rows the last round added."""
    key, columns = context.working[table.name]
    alias = table.alias or table.name
    _new_alias(alias, refs, context.source, table)
    derived = DerivedTable(alias, columns)
    base = sum(len(ref.schema.columns) for ref in refs)
    refs.append(TableRef(alias, derived, base))
    return Derived(derived, alias, base, alias, Working(key, len(columns)))


@dataclass(frozen=True)
class DerivedTable(TableSchema):
    """The columns of a FROM subquery, as a table without keys or indexes. Its column
    names are whatever the subquery's output is called (``a + 1`` included), so the
    identifier checks of a declared table do not apply."""

    def __post_init__(self) -> None:
        pass


class _EnclosingOnly:
    """A FROM subquery's view outward: the enclosing query's own enclosing scopes, as
    that query reads them (its correlated values), never the tables beside it."""

    def __init__(self, binder: QueryBinder) -> None:
        self.binder = binder

    def can_see(self, name: str, qualifier: str | None) -> bool:
        outer = self.binder.outer
        return outer is not None and outer.can_see(name, qualifier)

    def bind_outer(self, node: exp.Expression) -> Expr:
        return self.binder.outward(node)


def _join(
    join: exp.Join,
    left: Node,
    context: Context,
    refs: list[TableRef],
    binder: QueryBinder,
    hidden_rows: list[Expr],
    reads: set[str],
) -> Node:
    source, rules = context.source, context.rules
    side = (join.side or "").upper()
    kind = (join.kind or "").upper()
    if side not in ("", "LEFT") or kind not in ("", "INNER", "CROSS", "OUTER"):
        source.fail(f"unsupported construct: {side or kind} JOIN (use INNER or LEFT)", join)
    if join.args.get("using"):
        source.fail("unsupported construct: JOIN ... USING (write ON a.x = b.x)", join)
    right = _scan(join.this, context, refs, binder, reads)
    binder.scope = Scope(list(refs))
    binder.clause = "ON"
    on = join.args.get("on")
    condition = None if on is None else binder.bind(on)
    if side == "LEFT" and condition is None:
        source.fail("LEFT JOIN needs an ON condition", join)
    ref = refs[-1]
    if ref.schema.name in rules and not isinstance(right, Derived):
        restricted = restriction(rules[ref.schema.name], ref, binder.sender, rules)
        if side == "LEFT":
            assert condition is not None
            condition = Binary("AND", restricted, condition)
        else:
            hidden_rows.append(restricted)
    return Join("LEFT" if side == "LEFT" else "INNER", left, right, condition)


def _select_list(
    node: exp.Select, binder: Binder, refs: list[TableRef], source: Source
) -> tuple[list[Expr], list[str]]:
    outputs: list[Expr] = []
    names: list[str] = []
    binder.aggregates_allowed = True
    binder.clause = "SELECT"
    for item in node.expressions:
        star_of = _star_table(item)
        if star_of is not None:
            if not refs:
                source.fail("SELECT * needs a FROM clause (no tables specified)", item)
            chosen = [ref for ref in refs if star_of == "*" or ref.alias == star_of]
            if not chosen:
                known = ", ".join(ref.alias for ref in refs)
                source.fail(f"unknown table or alias {star_of!r} (tables: {known})", item)
            for ref in chosen:
                for position, column in enumerate(ref.schema.columns):
                    shown = f"{ref.alias}.{column.name}" if len(refs) > 1 else column.name
                    outputs.append(Col(ref.base + position, shown, column.type))
                    names.append(column.name)
            continue
        if isinstance(item, exp.Alias):
            outputs.append(binder.bind(item.this))
            names.append(item.alias)
        else:
            outputs.append(binder.bind(item))
            names.append(item.name if isinstance(item, exp.Column) else _text(item, source))
    return outputs, names


def _star_table(item: exp.Expression) -> str | None:
    if isinstance(item, exp.Star):
        return "*"
    if isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
        return item.table or "*"
    return None


def _text(item: exp.Expression, source: Source) -> str:
    """The expression as written, which is how SQLite names an unaliased column."""
    span = source.span(item)
    if span is None:
        return str(item.sql(dialect="sqlite"))
    start, end = span
    text = source.text
    # A span covers only positioned tokens (names, literals): extend it over the
    # closing parentheses of "count(*)" or "(a + b)", which carry no position.
    depth = text.count("(", start, end + 1) - text.count(")", start, end + 1)
    while depth > 0 and end + 1 < len(text):
        end += 1
        depth += {"(": 1, ")": -1}.get(text[end], 0)
    return text[start : end + 1]


def _group_item(
    item: exp.Expression, binder: Binder, outputs: list[Expr], names: list[str], source: Source
) -> Expr:
    if isinstance(item, exp.Literal) and item.this.isdigit():
        return outputs[_position(item, len(outputs), source)]
    if (
        isinstance(item, exp.Column)
        and not item.table
        and item.name in names
        and not binder.scope.find(item.name, None)
    ):
        return outputs[names.index(item.name)]
    return binder.bind(item)


def _position(item: exp.Literal, count: int, source: Source) -> int:
    position = int(item.this)
    if not 1 <= position <= count:
        source.fail(f"position {position} is not between 1 and {count}", item)
    return position - 1


def _order(
    node: exp.Select,
    binder: Binder,
    outputs: list[Expr],
    names: list[str],
    source: Source,
    nulls_first: list[bool] | None = None,
) -> tuple[list[tuple[int, bool]], list[Expr], list[str]]:
    order = node.args.get("order")
    keys: list[tuple[int, bool]] = []
    hidden: list[Expr] = []
    labels: list[str] = []
    if order is None:
        return keys, hidden, labels
    for ordered in order.expressions:
        term = ordered.this
        desc = bool(ordered.args.get("desc"))
        if isinstance(term, exp.Literal) and term.this.isdigit():
            slot = _position(term, len(outputs), source)
        elif isinstance(term, exp.Column) and not term.table and term.name in names:
            slot = names.index(term.name)
        else:
            expr = binder.bind(term)
            if expr in outputs:
                slot = outputs.index(expr)
            elif expr in hidden:
                slot = len(outputs) + hidden.index(expr)
            else:
                hidden.append(expr)
                slot = len(outputs) + len(hidden) - 1
        keys.append((slot, desc))
        first = ordered.args.get("nulls_first")
        first = (not desc) if first is None else bool(first)  # NULLs are the smallest
        if nulls_first is not None:
            nulls_first.append(first)
        nulls = "" if first != desc else (" NULLS FIRST" if first else " NULLS LAST")
        labels.append(_text(term, source) + (" DESC" if desc else "") + nulls)
    # Hidden keys sit after the outputs, whose count is final only now.
    return keys, hidden, labels


def limit(node: exp.Expression, plan: Node, binder: Binder, source: Source) -> Node:
    limit_node, offset_node = node.args.get("limit"), node.args.get("offset")
    if limit_node is None and offset_node is None:
        return plan
    limit = None if limit_node is None else _count(limit_node.expression, binder, source)
    offset = 0 if offset_node is None else _count(offset_node.expression, binder, source)
    return Limit(plan, limit, offset)  # Limit makes a negative LIMIT none, as SQLite does


def _count(node: exp.Expression, binder: Binder, source: Source) -> int | Param:
    """An integer constant, or a parameter whose value is an int (the cache keys on it)."""
    binder.aggregates_allowed = False
    binder.clause = "LIMIT"
    value = binder.bind(node)
    if isinstance(value, Param) and type(binder.params.get(value.name)) is int:
        return value
    if not isinstance(value, Const) or type(value.value) is not int:
        source.fail("LIMIT and OFFSET take an integer constant or parameter", node)
    return value.value


def _has_aggregate(expr: Expr) -> bool:
    return isinstance(expr, Agg) or any(_has_aggregate(c) for c in children(expr))


class _Rewriter:
    """Rewrite a post-aggregation expression to read the Aggregate's output row."""

    def __init__(
        self,
        groups: list[Expr],
        aggregates: list[Agg],
        source: Source,
        node: exp.Expression,
        *,
        bare: bool = False,
    ) -> None:
        self.groups = groups
        self.aggregates = aggregates
        self.source = source
        self.node = node
        self.bare = bare
        """In HAVING, a column neither grouped nor aggregated is SQLite's bare column:
        its value in one row of the group (``BARE``: the first row, as SQLite 3.40
        picks it for a scan), not an error."""

    def __call__(self, expr: Expr) -> Expr:
        if expr in self.groups:
            return Col(self.groups.index(expr), render(expr), type_of(expr))
        if isinstance(expr, Col) and self.bare:
            expr = Agg("BARE", expr, False, expr.type)
        if isinstance(expr, Agg):
            if expr not in self.aggregates:
                self.aggregates.append(expr)
            slot = len(self.groups) + self.aggregates.index(expr)
            return Col(slot, render(expr), expr.type)
        if isinstance(expr, Col):
            self.source.fail(
                f"column {expr.name} must appear in GROUP BY or inside an aggregate", self.node
            )
        if isinstance(expr, Binary):
            return Binary(expr.op, self(expr.left), self(expr.right), expr.type)
        if isinstance(expr, Unary):
            return Unary(expr.op, self(expr.operand), expr.type)
        if isinstance(expr, IsNull):
            return IsNull(self(expr.operand), expr.negated)
        if isinstance(expr, InList):
            return InList(self(expr.operand), tuple(map(self, expr.items)), expr.negated)
        if isinstance(expr, Between):
            return Between(self(expr.operand), self(expr.low), self(expr.high), expr.negated)
        if isinstance(expr, Like):
            return Like(self(expr.operand), self(expr.pattern), expr.negated)
        if isinstance(expr, Subquery):
            operand = None if expr.operand is None else self(expr.operand)
            return replace(expr, operand=operand, args=tuple(map(self, expr.args)))
        return map_children(expr, self)  # functions, CASE, CAST
