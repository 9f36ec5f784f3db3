"""Compiling a subscribable query: SQL text to a ``LiveQuery``, or a refusal saying why.

``compile_live`` turns SQL text into a ``LiveQuery`` or refuses it with a ``SqlError``
naming why. The query is planned by the SQL engine (``parse.prepare`` with
``optimized=False``: the logical plan) and decomposed into its FROM positions
(``Source``), the conjuncts of its ON and WHERE conditions, the table whose rows it
returns, and an optional ORDER BY ... LIMIT window. ``LiveQuery`` plans the delta terms
(``terms.py``) and the guards (``guards.py``, ``join_filters.py``) from these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from cosmictron.errors import SqlError
from cosmictron.query import SelectStatement
from cosmictron.query.params import bind
from cosmictron.query.parse import param_values, prepare
from cosmictron.query.plan import (
    Aggregate,
    Col,
    Compound,
    Derived,
    Distinct,
    Expr,
    Filter,
    Join,
    Limit,
    Node,
    Project,
    Scan,
    Sort,
    Subqueries,
    Values,
    conjoin,
    conjuncts,
    node_children,
)
from cosmictron.subscription.join_filters import join_filters
from cosmictron.subscription.live import LiveQuery
from cosmictron.subscription.reevaluated import ReevaluatedQuery
from cosmictron.subscription.result_shape import QueryResultName
from cosmictron.subscription.semijoin import SemiJoinQuery, has_subquery, side
from cosmictron.subscription.terms import Source
from cosmictron.values import Identity


def compile_live(
    text: str,
    schema: Any,
    params: Mapping[str, Any] | None,
    sender: Identity,
    restricted: bool = False,
    views: Mapping[str, Any] | None = None,
) -> LiveQuery:
    """Plan ``text`` and decompose it for incremental maintenance.

    ``restricted`` applies the schema's visibility filters (a non-owner subscribes):
    they become conjuncts of the plan, so every delta term honours them. ``views`` are
    the views the query may name (``query/views.py``), expanded as ``db.sql`` expands
    them: a query naming one is re-evaluated when a table under the view changes.

    Every query ``db.sql`` accepts can be subscribed to: one of the incrementally
    maintained shape becomes a ``LiveQuery``, any other a ``ReevaluatedQuery``
    (``reevaluated.py``; ``maintenance`` says which).

    Raises:
        SqlError: the SQL is invalid or not a SELECT.
    """
    planned = prepare(
        text, schema, params, sender, optimized=False, restricted=restricted, views=views
    )
    if not isinstance(planned, SelectStatement):
        raise SqlError("only a SELECT can be subscribed to")
    statement = bind(planned, param_values(params, sender))
    # The key of the plan after binding: equal plans (whatever the spelling of the SQL)
    # over the same schema share one LiveQuery. ``:sender`` and the visibility filters
    # are bound into the plan, so a query that depends on the sender is keyed by it and
    # one that does not is shared by every sender.
    key = (id(schema), repr(statement.plan), _identities(statement.plan))
    query: LiveQuery
    try:
        query = _incremental(key, text, statement)
    except SqlError as exc:
        # Not of the incrementally maintained shape: re-evaluated on each change.
        query = ReevaluatedQuery(key, text, statement, str(exc))
        if isinstance(query.table_name, QueryResultName):
            # Its rows travel under its own text: another spelling is another name.
            query.key = (*key, text)
    query.origin = (text, dict(params or {}), sender, restricted)
    return query


def maintenance_of(statement: SelectStatement, text: str) -> str:
    """How a subscription to ``statement`` would be kept up to date, in ``maintenance``'s
    line: for ``EXPLAIN`` through ``db.sql``, from the logical plan ``prepare`` already
    built (``Explain.logical``, parameters bound), so nothing is parsed or planned again
    beyond what a subscription compiles."""
    query: LiveQuery
    try:
        query = _incremental(None, text, statement)
    except SqlError as exc:
        query = ReevaluatedQuery(None, text, statement, str(exc))
    return maintenance(query)


def maintenance(query: LiveQuery) -> str:
    """How a subscription keeps ``query`` up to date, in one line (``Subscription.explain``)."""
    if isinstance(query, ReevaluatedQuery) and not query.reads:
        return "Subscription: its result never changes (it reads no table)"
    if isinstance(query, ReevaluatedQuery):
        tables = ", ".join(sorted(query.reads))
        return (
            f"Subscription: re-evaluated when {tables} change{'s' if len(query.reads) == 1 else ''}"
            f", sending the difference (at most limits.subscription_reevaluation_rows_max "
            f"rows examined each time; not incremental: {query.why})"
        )
    if isinstance(query, SemiJoinQuery):
        counted = "; ".join(found.label for found in query.sides)
        return (
            f"Subscription: incremental (delta terms, semi-joins counted per key: {counted}) "
            f"over {', '.join(sorted(query.tables))}"
        )
    kind = "top-N window" if query.top_n else "delta terms"
    if query.filter_tables:
        kind += ", re-evaluated when a visibility filter's table changes"
    return f"Subscription: incremental ({kind}) over {', '.join(sorted(query.tables))}"


def _incremental(key: Any, text: str, statement: SelectStatement) -> LiveQuery:
    """The ``LiveQuery`` of an incrementally maintainable query, or a ``SqlError``
    saying which construct is not."""
    plan = statement.plan
    subqueries = isinstance(plan, Subqueries)
    if subqueries:
        # Subqueries in expressions: semi-joins in WHERE may be counted (semijoin.py).
        assert isinstance(plan, Subqueries)
        plan = plan.child
    for node in _walk_all(plan):
        if isinstance(node, Subqueries | Derived | Compound | Values):
            raise SqlError(f"{_what(node)} (maintained by re-evaluation)")
    limit: int | None = None
    if isinstance(plan, Limit):
        if plan.offset:
            raise SqlError("OFFSET is not subscribable (a live window starts at the first row)")
        limit = plan.limit
        plan = plan.child
    sort_keys: tuple[tuple[int, bool], ...] = ()
    if isinstance(plan, Sort):
        sort_keys = plan.keys
        if plan.nulls_first and limit is not None:
            raise SqlError(
                "NULLS FIRST/LAST with LIMIT (a live window keeps NULLs first ascending, "
                "last descending; maintained by re-evaluation)"
            )
        plan = plan.child
    if limit is not None and not sort_keys:
        raise SqlError("LIMIT without ORDER BY is not subscribable (which rows is undefined)")
    if isinstance(plan, Distinct):
        raise SqlError("DISTINCT is not subscribable (a subscription is a bag of rows)")
    assert isinstance(plan, Project), plan
    if any(isinstance(node, Aggregate) for node in _walk(plan)):
        raise SqlError("aggregates and GROUP BY")
    from_where = plan.child
    predicates: list[Expr] = []
    if isinstance(from_where, Filter):
        predicates.extend(conjuncts(from_where.predicate))
        joins = from_where.child
    else:
        joins = from_where
    where = list(predicates)
    sources: list[Source] = []
    _collect(joins, sources, predicates)
    output = _output_source(plan, sources)
    if not sort_keys:
        limit = None
    if subqueries:
        return _semijoin(
            key, text, statement, plan, joins, where, sources, output, predicates, limit
        )
    return LiveQuery(
        key, text, statement, from_where, sources, output, predicates, plan.exprs, sort_keys, limit
    )


def _semijoin(
    key: Any,
    text: str,
    statement: SelectStatement,
    project: Project,
    joins: Node,
    where: list[Expr],
    sources: list[Source],
    output: int,
    predicates: list[Expr],
    limit: int | None,
) -> SemiJoinQuery:
    """A query of the incremental shape with subqueries: a ``SemiJoinQuery`` when every
    subquery is a WHERE conjunct that can be counted, else a ``SqlError`` saying why."""
    counted = [p for p in where if has_subquery(p)]
    if limit is not None:
        raise SqlError("a subquery in a top-N subscription (maintained by re-evaluation)")
    if has_subquery(project.exprs) or has_subquery(predicates[len(where) :]):
        raise SqlError("a subquery outside WHERE (maintained by re-evaluation)")
    if not counted:
        raise SqlError("a subquery (maintained by re-evaluation)")
    rest = [p for p in where if not has_subquery(p)]
    if join_filters([p for p in predicates if not has_subquery(p)]):
        raise SqlError(
            "a subquery beside a visibility filter that joins tables (maintained by re-evaluation)"
        )
    try:
        sides = [side(p) for p in counted]
    except SqlError as exc:
        raise SqlError(f"{exc} (maintained by re-evaluation)") from None
    condition = conjoin(rest)
    logical = joins if condition is None else Filter(joins, condition)
    outer = [p for p in predicates if not has_subquery(p)]
    return SemiJoinQuery(
        key, text, statement, logical, sources, output, outer, project.exprs, sides
    )


def _walk_all(node: Node) -> Iterable[Node]:
    """Every node of a plan, FROM subqueries' and compounds' included."""
    yield node
    if isinstance(node, Derived) and node.plan is not None:
        yield from _walk_all(node.plan)
    for child in node_children(node):
        yield from _walk_all(child)


def _what(node: Node) -> str:
    if isinstance(node, Subqueries):
        return "a subquery"
    if isinstance(node, Derived):
        return "a subquery or CTE in FROM"
    if isinstance(node, Compound):
        return f"{node.op}"
    return "SELECT without FROM"


def _identities(value: Any) -> tuple[bytes, ...]:
    """Every ``Identity`` in a plan, whole, in order: ``repr`` shows only its first 8
    bytes, so two readers whose identities share them would otherwise share a query
    (and one would see the other's rows)."""
    if isinstance(value, Identity):
        return (value.data,)
    if isinstance(value, tuple | list):
        return tuple(data for item in value for data in _identities(item))
    if (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__module__.startswith("cosmictron.query")
    ):
        return tuple(
            data for f in dataclasses.fields(value) for data in _identities(getattr(value, f.name))
        )
    return ()


def _walk(node: Node) -> Iterable[Node]:
    yield node
    for child in node_children(node):
        yield from _walk(child)


def _collect(node: Node, sources: list[Source], predicates: list[Expr]) -> None:
    if isinstance(node, Scan):
        sources.append(
            Source(node.table, node.name, node.alias, node.base, len(node.table.columns))
        )
        return
    if isinstance(node, Join):
        if node.kind != "INNER":
            raise SqlError(f"{node.kind} JOIN is not subscribable (only inner joins are)")
        _collect(node.left, sources, predicates)
        _collect(node.right, sources, predicates)
        predicates.extend(conjuncts(node.condition))
        return
    raise SqlError(f"unsupported construct in a subscription: {type(node).__name__}")


def _output_source(project: Project, sources: list[Source]) -> int:
    shown = project.exprs[: project.width]
    for position, source in enumerate(sources):
        wanted = [source.base + i for i in range(source.width)]
        if [e.slot if isinstance(e, Col) else None for e in shown] == wanted:
            return position
    if len(sources) > 1 and project.width == sum(s.width for s in sources):
        raise SqlError(
            "SELECT * over a join (the rows of several tables; one table's rows, "
            "SELECT t.*, are incremental)"
        )
    raise SqlError(
        "a column list or expressions (only whole rows of one table, SELECT * or "
        "SELECT t.*, are incremental)"
    )
