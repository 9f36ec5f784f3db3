"""One subscribed query kept up to date: compiled once, then maintained by deltas.

``compile_live`` turns SQL text into a ``LiveQuery`` or refuses it with a ``SqlError``
naming why. The query is planned by the SQL engine (``parse.prepare`` with
``optimized=False``: the logical plan) and decomposed into its FROM positions
(``Source``), the conjuncts of its ON and WHERE conditions, the table whose rows it
returns, and an optional ORDER BY ... LIMIT window.

``LiveQuery.delta`` computes the change of the result from a transaction's
``TableChange`` lists, never from whole tables (docs/design/subscriptions.md). For
k FROM positions, the telescoping sum

    ΔQ = Σ_i  R1' ⋈ … ⋈ R(i-1)' ⋈ ΔRi ⋈ R(i+1) ⋈ … ⋈ Rk

has one term per position whose table changed. A term starts from that position's
signed rows (+inserts, -deletes) and extends each partial combination one position
at a time (the order chosen once, at compile time: first a position reachable by an
indexed equality, then one sharing a condition, else the next in FROM order),
looking rows up through a single-column index or the primary key when an equality
allows, otherwise scanning. Positions before ``i`` read the tables as they are (the
state after the commit); positions after ``i`` read them *before* the transaction,
which is the current state with the transaction's inserts skipped (by row key) and its
deletes added back. Each conjunct runs as soon as every position it reads is bound.
The signed output rows are summed in a ``Counter``, so +/- pairs cancel and the result
is an exact bag delta.

A live top-N (``ORDER BY … LIMIT n``) keeps its window in a ``SortedList`` under a
total order: the ORDER BY keys (NULLs first ascending, last descending, as ``db.sql``)
then the output row's values, so ties are broken deterministically (rows equal under
that order are identical rows). Delta rows at or before the window's last row enter
it; deleted rows leave it; a window left short while rows remain outside it is
refilled by evaluating the whole query, the one re-evaluation the design allows.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedList

from cosmictron import limits
from cosmictron.datastore import Datastore, TableChange, TableSchema
from cosmictron.errors import SqlError
from cosmictron.query import SelectStatement, execute, optimize
from cosmictron.query.budget import Meter
from cosmictron.query.cache import Converter, converter
from cosmictron.query.execute import resolve_semijoins
from cosmictron.query.expressions import compile_expr
from cosmictron.query.params import bind
from cosmictron.query.parse import param_values, prepare
from cosmictron.query.plan import (
    Aggregate,
    Binary,
    Col,
    Const,
    Distinct,
    Expr,
    Filter,
    Join,
    KeySet,
    Limit,
    Node,
    Project,
    Scan,
    SemiJoin,
    Sort,
    conjuncts,
    node_children,
    slots,
)
from cosmictron.query.visibility import semijoins
from cosmictron.values import Identity

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


class TxView:
    """One transaction's changes, indexed for the delta terms (built once per commit)."""

    def __init__(self, datastore: Datastore, changes: Iterable[TableChange]) -> None:
        self.datastore = datastore
        self.inserts: dict[str, list[Row]] = {}
        self.deletes: dict[str, list[Row]] = {}
        self.inserted_keys: dict[str, set[Any]] = {}
        self._deletes_by: dict[tuple[str, int], dict[Any, list[Row]]] = {}
        for change in changes:
            name = change.table.name
            if change.inserts:
                self.inserts[name] = change.inserts
                self.inserted_keys[name] = {change.table.row_key(r) for r in change.inserts}
            if change.deletes:
                self.deletes[name] = change.deletes

    @property
    def tables(self) -> set[str]:
        return set(self.inserts) | set(self.deletes)

    def deletes_by(self, table: str, column: int) -> dict[Any, list[Row]]:
        found = self._deletes_by.get((table, column))
        if found is None:
            found = {}
            for row in self.deletes.get(table, ()):
                found.setdefault(row[column], []).append(row)
            self._deletes_by[(table, column)] = found
        return found


class LiveQuery:
    """A compiled subscribable query, shared by every subscriber with the same ``key``."""

    def __init__(
        self,
        key: Any,
        text: str,
        statement: SelectStatement,
        logical: Node,
        sources: list[Source],
        output: int,
        predicates: list[Expr],
        exprs: tuple[Expr, ...],
        sort_keys: tuple[tuple[int, bool], ...],
        limit: int | None,
    ) -> None:
        self.key = key
        self.text = text
        self.sources = sources
        self.output = output
        out = sources[output]
        self.table_name = out.name
        self.tables = frozenset(source.name for source in sources)
        self.columns = statement.columns
        found = tuple(converter(t) for t in statement.types)
        self.converters: tuple[Converter | None, ...] | None = (
            found if any(c is not None for c in found) else None
        )
        self._from_where = optimize(logical)
        self._out_slice = slice(out.base, out.base + out.width)
        self._sort_keys = sort_keys
        self._sort_exprs: tuple[Check, ...] = tuple(
            compile_expr(exprs[slot]) for slot, _ in sort_keys
        )
        self.limit = limit
        self._predicates = predicates
        # Join visibility filters (``SemiJoin``): the tables their subplans read, at any
        # depth. A transaction touching one re-evaluates the query and diffs it against
        # ``_result`` (see ``delta``); one touching only FROM tables runs the delta terms
        # with the semi-joins evaluated over the current state.
        joins = [semijoin for p in predicates for semijoin in semijoins(p)]
        self.filter_tables = frozenset(
            table for semijoin in joins for table, _, _ in semijoin.occurrences
        )
        self._terms = (
            [] if joins else [_plan_term(i, sources, predicates) for i in range(len(sources))]
        )
        self._result: Counter[Row] | None = Counter() if joins else None
        self.guards = _guards(sources, predicates)
        self.guards.update(_filter_guards(joins, self.tables))
        self.reevaluations = 0  # deltas computed by evaluating the whole query again
        self.reevaluated = False  # whether the last ``delta`` re-evaluated (the manager asks)
        self.key_guard = _key_guard(sources, predicates)
        self._positions_of: dict[str, list[int]] = {}
        for position, source in enumerate(sources):
            self._positions_of.setdefault(source.name, []).append(position)
        self.subscribers: set[Any] = set()
        # What compiled it (text, params, sender, restricted): a hot-swap recompiles it.
        self.origin: tuple[str, dict[str, Any], Identity, bool] = (text, {}, Identity.zero(), False)
        self.evaluations = 0  # deltas computed (one per transaction touching its tables)
        self._window: SortedList | None = None
        self._complete = True

    # -- evaluation --------------------------------------------------------------------

    @property
    def top_n(self) -> bool:
        return self.limit is not None

    def key_values(self, datastore: Datastore) -> frozenset[Any]:
        """The values of ``key_guard``'s column a changed row must have to matter: the
        set its semi-join admits now (see ``_key_guard``)."""
        assert self.key_guard is not None
        semijoin = self.key_guard[2]
        resolved = resolve_semijoins(semijoin, datastore)
        assert isinstance(resolved, KeySet)
        return frozenset(values[0] for values in resolved.values)

    @property
    def reads(self) -> frozenset[str]:
        """Every table whose change may change the result: FROM's and the filters'."""
        return self.tables | self.filter_tables

    def initial(
        self, datastore: Datastore, rows_max: int | None = None, meter: Meter | None = None
    ) -> list[Row]:
        """The current result (canonical rows); for a top-N, also (re)sets the window.

        ``meter`` charges the evaluation to a caller's budget (``query/budget.py``).
        """
        if rows_max is None:
            rows_max = limits.query_rows_max
        if self.limit is None:
            rows = execute(self._from_where, datastore, rows_max, meter)
            result = [row[self._out_slice] for row in rows]
            if self._result is not None:
                self._result = Counter(result)  # what the next re-evaluation diffs against
            return result
        self._refill(datastore, rows_max, meter)
        assert self._window is not None
        return [entry[1] for entry in self._window]

    def current(self) -> list[Row]:
        """A top-N's current window, in order (for a new subscriber sharing it)."""
        assert self._window is not None
        return [entry[1] for entry in self._window]

    def delta(self, tx: TxView) -> tuple[list[Row], list[Row]]:
        """The (inserts, deletes) this transaction makes to the result (canonical rows)."""
        self.evaluations += 1
        self.reevaluated = False
        if self._result is not None and tx.tables & self.filter_tables:
            return self._reevaluate(tx.datastore)
        terms = self._terms
        if self._result is not None and not terms:
            # The filters' tables are unchanged: their semi-joins read the same rows
            # before and after this transaction, and since the last re-evaluation (a
            # change to them re-evaluates; one a guard skips cannot change them), so
            # they are evaluated once and kept until the next re-evaluation.
            resolved = [resolve_semijoins(p, tx.datastore) for p in self._predicates]
            terms = [_plan_term(i, self.sources, resolved) for i in range(len(self.sources))]
            self._terms = terms
        signed: Counter[Any] = Counter()
        for name in tx.tables:
            for position in self._positions_of.get(name, ()):
                self._run_term(terms[position], tx, signed)
        if self.limit is not None:
            return self._apply_window(signed, tx.datastore)
        if self._result is not None:
            self._result.update(signed)
            self._result = +self._result
        return _split(signed)

    def _reevaluate(self, datastore: Datastore) -> tuple[list[Row], list[Row]]:
        """The delta as the difference of the whole result after and before.

        A change to a table a join filter reads can reveal or hide any number of rows
        (a membership admits a whole room's messages), so the query is evaluated again
        and compared with the result kept from the last transaction: the cost of such a
        transaction is one evaluation of the query per distinct live query it wakes.
        """
        self.reevaluations += 1
        self.reevaluated = True
        self._terms = []  # the semi-joins' sets may have changed: evaluate them again
        if self.limit is not None:
            before = Counter(entry[1] for entry in self._window or ())
            self._refill(datastore)
            after = Counter(entry[1] for entry in self._window or ())
        else:
            assert self._result is not None
            before = self._result
            rows = execute(self._from_where, datastore, limits.query_rows_max)
            after = Counter(row[self._out_slice] for row in rows)
            self._result = after
        signed: Counter[Any] = Counter(after)
        signed.subtract(before)
        return _split(signed)

    def _entry(self, full: Any) -> Any:
        row = tuple(full[self._out_slice])
        if self.limit is None:
            return row
        values = tuple(function(full) for function in self._sort_exprs)
        return (_order_key(values, self._sort_keys, row), row)

    def _run_term(self, term: Term, tx: TxView, signed: Counter[Any]) -> None:
        sources = self.sources
        seed = sources[term.seed]
        width = sum(source.width for source in sources)
        full: list[Any] = [None] * width
        steps = term.steps
        datastore = tx.datastore
        seed_position = term.seed
        entry = self._entry

        def extend(depth: int, sign: int) -> None:
            if depth == len(steps):
                signed[entry(full)] += sign
                return
            step = steps[depth]
            source = sources[step.position]
            before = step.position > seed_position
            base, end = source.base, source.base + source.width
            for row in _candidates(source, step.lookup, full, datastore, tx, before):
                full[base:end] = row
                if all(check(full) for check in step.checks):
                    extend(depth + 1, sign)

        for rows, sign in ((tx.inserts.get(seed.name, ()), 1), (tx.deletes.get(seed.name, ()), -1)):
            for row in rows:
                full[seed.base : seed.base + seed.width] = row
                if all(check(full) for check in term.seed_checks):
                    extend(0, sign)

    # -- top-N -------------------------------------------------------------------------

    def _refill(
        self, datastore: Datastore, rows_max: int | None = None, meter: Meter | None = None
    ) -> None:
        assert self.limit is not None
        if rows_max is None:
            rows_max = limits.query_rows_max
        rows = execute(self._from_where, datastore, rows_max, meter)
        entries = sorted(self._entry(row) for row in rows)
        self._window = SortedList(entries[: self.limit])
        self._complete = len(entries) <= self.limit

    def _apply_window(
        self, signed: Counter[Any], datastore: Datastore
    ) -> tuple[list[Row], list[Row]]:
        window = self._window
        assert window is not None and self.limit is not None
        limit = self.limit
        changed: Counter[Row] = Counter()
        boundary = None if self._complete or not window else window[-1]
        refill = False
        for entry, count in sorted(signed.items(), key=lambda item: item[1]):  # deletes first
            inside = boundary is None or entry <= boundary
            if not inside:
                continue
            if count < 0:
                for _ in range(-count):
                    if entry in window:
                        window.remove(entry)
                        changed[entry[1]] -= 1
                    elif entry != boundary:
                        refill = True  # cannot happen: every row before the boundary is in
            elif count > 0:
                for _ in range(count):
                    window.add(entry)
                    changed[entry[1]] += 1
        while len(window) > limit:
            changed[window.pop()[1]] -= 1
            self._complete = False
        if refill or (not self._complete and len(window) < limit):
            # The window is short while rows remain outside it: evaluate the query again.
            before = Counter(entry[1] for entry in window)
            before.subtract(changed)  # the window as it was before this transaction
            self._refill(datastore)
            changed = Counter(entry[1] for entry in self._window or ())
            changed.subtract(before)
        inserts: list[Row] = []
        deletes: list[Row] = []
        for row, count in changed.items():
            if count > 0:
                inserts.extend([row] * count)
            elif count < 0:
                deletes.extend([row] * -count)
        return inserts, deletes


def _split(signed: Counter[Any]) -> tuple[list[Row], list[Row]]:
    """(inserts, deletes) of a signed bag of rows."""
    inserts: list[Row] = []
    deletes: list[Row] = []
    for row, count in signed.items():
        if count > 0:
            inserts.extend([row] * count)
        elif count < 0:
            deletes.extend([row] * -count)
    return inserts, deletes


def _candidates(
    source: Source,
    lookup: Lookup | None,
    full: list[Any],
    datastore: Datastore,
    tx: TxView,
    before: bool,
) -> Iterable[Row]:
    """Rows of one position, after the commit or (``before``) as it was before it."""
    table = datastore.tables[source.name]
    rows = table.rows
    skip = tx.inserted_keys.get(source.name) if before else None
    if lookup is None:
        if skip:
            found: list[Row] = [row for key, row in rows.items() if key not in skip]
        else:
            found = list(rows.values())
        if before:
            found.extend(tx.deletes.get(source.name, ()))
        return found
    key = lookup.key(full)
    if key is None:
        return ()
    if lookup.index is None:
        keys: Iterable[Any] = () if key not in rows else (key,)
    else:
        index = table.index_named(lookup.index)
        assert index is not None
        keys = list(index.row_keys(key))
    found = [rows[k] for k in keys if not skip or k not in skip]
    if before and source.name in tx.deletes:
        found.extend(tx.deletes_by(source.name, lookup.column).get(key, ()))
    return found


class _Desc:
    """Reverses the order of the value it wraps (a descending ORDER BY key)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    def __gt__(self, other: _Desc) -> bool:
        return bool(other.value > self.value)

    def __le__(self, other: _Desc) -> bool:
        return bool(other.value <= self.value)

    def __ge__(self, other: _Desc) -> bool:
        return bool(other.value >= self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def _order_key(values: Row, keys: tuple[tuple[int, bool], ...], row: Row) -> Row:
    parts: list[Any] = []
    for value, (_, descending) in zip(values, keys, strict=True):
        part = (value is not None, value)
        parts.append(_Desc(part) if descending else part)
    parts.append(tuple((value is not None, value) for value in row))
    return tuple(parts)


# -- compiling -------------------------------------------------------------------------


def compile_live(
    text: str,
    schema: Any,
    params: Mapping[str, Any] | None,
    sender: Identity,
    restricted: bool = False,
) -> LiveQuery:
    """Plan ``text`` and decompose it for incremental maintenance.

    ``restricted`` applies the schema's visibility filters (a non-owner subscribes):
    they become conjuncts of the plan, so every delta term honours them.

    Raises:
        SqlError: the SQL is invalid, or not of the subscribable shape (the message
            says which construct).
    """
    planned = prepare(text, schema, params, sender, optimized=False, restricted=restricted)
    if not isinstance(planned, SelectStatement):
        raise SqlError("only a SELECT can be subscribed to")
    statement = bind(planned, param_values(params, sender))
    plan = statement.plan
    limit: int | None = None
    if isinstance(plan, Limit):
        if plan.offset:
            raise SqlError("OFFSET is not subscribable (a live window starts at the first row)")
        limit = plan.limit
        plan = plan.child
    sort_keys: tuple[tuple[int, bool], ...] = ()
    if isinstance(plan, Sort):
        sort_keys = plan.keys
        plan = plan.child
    if limit is not None and not sort_keys:
        raise SqlError("LIMIT without ORDER BY is not subscribable (which rows is undefined)")
    if isinstance(plan, Distinct):
        raise SqlError("DISTINCT is not subscribable (a subscription is a bag of rows)")
    assert isinstance(plan, Project), plan
    if any(isinstance(node, Aggregate) for node in _walk(plan)):
        raise SqlError("aggregates and GROUP BY are not subscribable; use a one-off query")
    from_where = plan.child
    predicates: list[Expr] = []
    if isinstance(from_where, Filter):
        predicates.extend(conjuncts(from_where.predicate))
        joins = from_where.child
    else:
        joins = from_where
    sources: list[Source] = []
    _collect(joins, sources, predicates)
    output = _output_source(plan, sources)
    if not sort_keys:
        limit = None
    # The key of the plan after binding: equal plans (whatever the spelling of the SQL)
    # over the same schema share one LiveQuery. ``:sender`` and the visibility filters
    # are bound into the plan, so a query that depends on the sender is keyed by it and
    # one that does not is shared by every sender.
    key = (id(schema), repr(statement.plan), _identities(statement.plan))
    query = LiveQuery(
        key, text, statement, from_where, sources, output, predicates, plan.exprs, sort_keys, limit
    )
    query.origin = (text, dict(params or {}), sender, restricted)
    return query


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


_GUARD_TYPES = (int, float, str, bytes, bool, Identity)
"""Constant types a guard indexes by (hashable, and equal exactly when SQL's ``=`` is)."""


@dataclass(frozen=True)
class Guard:
    """A value every changed row of one table must lead to, to affect a query.

    ``column`` of the changed row is the value itself, or, when ``through`` names a
    joined table, the key looked up in that table's primary key (``index`` None) or
    unique single-column index, whose row's ``target`` column is the value. Equal guards
    (same table, same path) group the queries that differ only in their constant.
    """

    column: int
    through: str | None = None
    index: str | None = None
    target: int = 0

    def value_of(self, row: Row, datastore: Datastore) -> Any:
        """The guard value a changed row leads to (``MISSING`` if the join finds none)."""
        if self.through is None:
            return row[self.column]
        table = datastore.tables[self.through]
        key = row[self.column]
        if self.index is None:
            found = table.rows.get(key)
        else:
            index = table.index_named(self.index)
            assert index is not None
            keys = list(index.row_keys(key))
            found = table.rows.get(keys[0]) if keys else None
        return MISSING if found is None else found[self.target]


MISSING = object()


def _guards(sources: list[Source], predicates: list[Expr]) -> dict[str, tuple[Guard, Any]]:
    """Per table, a ``Guard`` and the constant its value must equal, where one exists.

    From a conjunct ``column = constant`` over a table that appears once in FROM: a
    row of that table with another value fails the conjunct in every delta term, so the
    manager need not run this query for it. One hop further, a table joined to such a
    table by an equality on the latter's primary key or unique column is guarded through
    the lookup. This is what lets thousands of queries that differ only in a constant
    (``WHERE owner = :sender``, ``JOIN room ... WHERE room.name = :r``) cost a
    transaction only the ones whose constant its rows lead to.
    """
    counts = Counter(source.name for source in sources)

    def source_of(slot: int) -> Source | None:
        for source in sources:
            if source.base <= slot < source.base + source.width:
                return source
        return None

    found: dict[str, tuple[Guard, Any]] = {}
    for predicate in predicates:
        if not isinstance(predicate, Binary) or predicate.op != "=":
            continue
        for column, other in ((predicate.left, predicate.right), (predicate.right, predicate.left)):
            if not isinstance(column, Col) or not isinstance(other, Const):
                continue
            if type(other.value) not in _GUARD_TYPES:
                continue
            source = source_of(column.slot)
            if source is not None and counts[source.name] == 1 and source.name not in found:
                found[source.name] = (Guard(column.slot - source.base), other.value)
    direct = dict(found)
    for predicate in predicates:
        if not isinstance(predicate, Binary) or predicate.op != "=":
            continue
        for near, far in ((predicate.left, predicate.right), (predicate.right, predicate.left)):
            if not isinstance(near, Col) or not isinstance(far, Col):
                continue
            changed, joined = source_of(near.slot), source_of(far.slot)
            if changed is None or joined is None or changed.name in found:
                continue
            if joined.name not in direct or joined.name == changed.name:
                continue
            if counts[changed.name] != 1:
                continue
            key_column = joined.table.columns[far.slot - joined.base].name
            indexed, index = _index_on(joined.table, key_column)
            if not indexed or not _is_unique(joined.table, index):
                continue
            target_guard, value = direct[joined.name]
            guard = Guard(near.slot - changed.base, joined.name, index, target_guard.column)
            found[changed.name] = (guard, value)
    return found


def _filter_guards(found: list[SemiJoin], tables: frozenset[str]) -> dict[str, tuple[Guard, Any]]:
    """Guards for the tables only join filters read (not in FROM): a table whose every
    occurrence in every semi-join, at any depth, requires ``column = constant`` with the
    same column and constant (``mem.identity = :sender``). A changed row with another
    value is read by none of them, before or after, so it cannot change the result:
    a membership change wakes only its member's subscriptions."""
    occurrences: dict[str, set[tuple[int, Any]]] = {}
    for semijoin in found:
        for table, column, value in semijoin.occurrences:
            if table in tables:
                continue
            constant = value.value if isinstance(value, Const) else MISSING
            if column < 0 or type(constant) not in _GUARD_TYPES:
                occurrences.setdefault(table, set()).add((-1, MISSING))
            else:
                occurrences.setdefault(table, set()).add((column, constant))
    guards: dict[str, tuple[Guard, Any]] = {}
    for table, found_guards in occurrences.items():
        if len(found_guards) == 1:
            column, constant = next(iter(found_guards))
            if column >= 0:
                guards[table] = (Guard(column), constant)
    return guards


def _key_guard(sources: list[Source], predicates: list[Expr]) -> tuple[str, int, SemiJoin] | None:
    """A FROM table (appearing once) whose rows matter only through one semi-join key.

    When a conjunct of the query is a ``SemiJoin`` whose one key is a column of that
    table, a changed row whose column value is not in the semi-join's set fails that
    conjunct in every delta term. The set changes only with the filter's tables, and a
    change to those re-evaluates the query, after which the manager indexes it again:
    so a message in one room wakes the subscriptions of that room's members only.
    """
    counts = Counter(source.name for source in sources)
    for predicate in predicates:
        if not isinstance(predicate, SemiJoin) or len(predicate.keys) != 1:
            continue
        key = predicate.keys[0]
        if not isinstance(key, Col):
            continue
        for source in sources:
            if source.base <= key.slot < source.base + source.width and counts[source.name] == 1:
                return source.name, key.slot - source.base, predicate
    return None


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
            "SELECT * over a join is not subscribable: subscribe to one table's rows with "
            "SELECT t.* (t the alias of that table)"
        )
    raise SqlError(
        "a subscription returns whole rows of one table: SELECT * or SELECT t.* "
        "(column lists and expressions are not subscribable)"
    )


def _plan_term(seed: int, sources: list[Source], predicates: list[Expr]) -> Term:
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
                rank = 0 if _is_unique(source.table, lookup.index) else (1 if joins else 2)
                if best is None or rank < best[0]:
                    best = (rank, lookup)
        if best is not None:
            return position, best[1]
    return (remaining[0] if connected is None else connected), None


def _is_unique(table: TableSchema, index: str | None) -> bool:
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
        indexed, index = _index_on(source.table, name)
        if indexed:
            return Lookup(column.slot - source.base, index, compile_expr(other))
    return None


def _index_on(table: TableSchema, column: str) -> tuple[bool, str | None]:
    """Whether ``column`` alone is indexed, and the index (None: the primary key)."""
    if tuple(table.primary_key) == (column,):
        return True, None
    for index in table.indexes:
        if tuple(index.columns) == (column,):
            return True, str(index.name)
    return False, None
