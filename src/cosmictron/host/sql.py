"""``Database.sql``: permissions, locking and logging around the query layer.

The query layer plans and executes; the host decides who may do what and how a write
becomes a transaction. A SELECT reads a snapshot of the tables it names, taken in
O(tables) under the writer lock (``DatabaseCore.read_snapshot``) and read without it, so it
sees one committed state and never delays a commit (docs/design/query-snapshots.md). It
runs under its ``QueryBudget`` (time, rows examined, rows returned), charged while it
runs (``query/budget.py``); the clock starts before the statement is prepared.

Every INSERT, UPDATE or DELETE is one transaction, logged like a reducer call named
``__sql__`` with arguments ``[text, params]`` (parameters in a JSON-like wire form), so
it is replayed after a restart and visible to audits. DML runs under the writer lock
without a budget: only the owner may send it.

Statements are prepared once per text (and schema and parameter types) and kept in the
statement cache (``query/cache.py``); each call fills in its parameters. A point SELECT
by primary key skips the operators altogether: one dict lookup under the lock.

``CREATE VIEW`` / ``DROP VIEW`` are logged view changes (``host/views.py``); a statement
naming a view is prepared on every call, not cached, since the view may change.

Permissions: the owner may do anything; anyone else may SELECT from public tables
only, and may not write. Reducers read private tables through ``ctx.db``, not SQL.
A non-owner's SELECT is planned with the module's visibility filters
(``query/visibility.py``), so it sees only the rows they admit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from time import monotonic
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore, ModuleSchema, Transaction
from cosmictron.errors import Conflict, InvalidRequest, PermissionDenied
from cosmictron.host.core import DatabaseCore
from cosmictron.host.handles import insert_all
from cosmictron.host.transactions import commit, next_timestamp_us, publish, run_transaction
from cosmictron.host.views import change_view
from cosmictron.query import (
    DeleteStatement,
    Explain,
    InsertStatement,
    QueryResult,
    SelectStatement,
    UpdateStatement,
    execute,
)
from cosmictron.query.budget import Meter, QueryBudget
from cosmictron.query.cache import STATEMENTS, Converter, PointLookup, Prepared
from cosmictron.query.cache import prepared as cache_entry
from cosmictron.query.dml import apply_insert, delete_rows, update_rows
from cosmictron.query.execute import execute_batches, plan_tables
from cosmictron.query.explain import explain_statement
from cosmictron.query.params import bind, check_sizes, has_params
from cosmictron.query.parse import param_values, prepare
from cosmictron.query.result import rows_result
from cosmictron.query.views import is_view_change
from cosmictron.query.visibility import restricts
from cosmictron.subscription.compile import maintenance_of
from cosmictron.values import Identity, json_form

SQL_REDUCER = "__sql__"
"""The reducer name recorded for SQL INSERT/UPDATE/DELETE transactions."""


SCHEMA_ATTEMPTS_MAX = 3
"""Times a statement is prepared again because a module update ran while it was prepared."""


class _SchemaMoved(Exception):
    """A module update ran between preparing a statement and running it under the lock."""


def run_sql(
    core: DatabaseCore,
    text: str,
    params: Mapping[str, Any] | None,
    sender: Identity,
    budget: QueryBudget,
) -> QueryResult:
    """Prepare (or find in the statement cache), check permissions, run; see ``Database.sql``.

    A statement is prepared outside the writer lock against the schema of that moment.
    Where it runs under the lock, it first checks that the datastore still has that
    schema; if a module update came in between, it is prepared again, so it never runs
    against tables it was not planned for (an INSERT would store rows of the old width).
    """
    started = monotonic()  # the budget's clock; a meter is made only if operators run
    check_sizes(params, budget)
    for _ in range(SCHEMA_ATTEMPTS_MAX):
        try:
            return _run_once(core, text, params, sender, budget, started)
        except _SchemaMoved:
            continue
    raise InvalidRequest("the module was updated repeatedly while the statement ran; retry it")


def point_rows(
    core: DatabaseCore,
    prepared: Prepared,
    params: Mapping[str, Any] | None,
    sender: Identity,
    budget: QueryBudget,
    weighed: bool = False,
) -> list[tuple[Any, ...]] | None:
    """Run a cached primary-key SELECT (``prepared.point``, from the statement cache
    for this text, parameter types and sender) without looking it up again: what
    ``run_sql`` does for it, rights and budget included, giving its rows (none or one)
    without a ``QueryResult``. The PostgreSQL port keeps a prepared statement's entry
    and runs each Execute through here. None when the module changed since it was
    prepared: run it with ``run_sql``. ``weighed``: the caller already passed
    ``check_sizes`` with parameters of the same names and budget whose weight cannot
    change (``params.fixed_weight``), so they are not weighed again.

    Raises:
        PermissionDenied, InvalidRequest, TooLarge, QueryTooCostly: as ``run_sql``.
    """
    point = prepared.point
    assert point is not None
    if params and not weighed:
        check_sizes(params, budget)
    schema = prepared.schema
    if core.module.schema is not schema:
        return None
    owner = core.owner
    if sender is not owner and sender != owner:
        _check_permissions(core, prepared.statement, sender)
    try:
        return _point_rows(core, point, params, sender, budget, schema)
    except _SchemaMoved:
        return None


def select_batches(
    core: DatabaseCore,
    text: str,
    params: Mapping[str, Any] | None,
    sender: Identity,
    budget: QueryBudget,
    batch_rows: int,
) -> tuple[tuple[str, ...], Iterator[list[tuple[Any, ...]]]] | None:
    """A cached SELECT's columns and its rows in batches, produced as they are
    iterated (``execute_batches``): the PostgreSQL port streams a scan instead of
    waiting for all of it. Rights, the snapshot and every budget are ``run_sql``'s;
    the budget's clock starts here. None for anything else (not in the statement
    cache yet, a point lookup, DML, EXPLAIN, a schema changed meanwhile): run it with
    ``run_sql``.

    Raises:
        PermissionDenied: as ``run_sql``; QueryTooCostly, QueryCancelled while iterating.
    """
    started = monotonic()
    schema = core.module.schema
    owner = core.owner
    prepared = STATEMENTS.get(text, schema, params, restricts(schema, sender, owner))
    if prepared is None or prepared.point is not None:
        return None
    statement = prepared.statement
    if not isinstance(statement, SelectStatement):
        return None
    check_sizes(params, budget)
    if sender is not owner and sender != owner:
        _check_permissions(core, statement, sender)
    if prepared.parametrised:
        statement = bind(statement, param_values(params, sender))
    snapshot = core.read_snapshot(plan_tables(statement.plan))
    seen = core.offset
    if snapshot.schema is not schema:
        return None
    if core.persistence.replicator is not None:
        core.persistence.wait_durable(seen)  # cluster mode: as ``_select`` (its comment)
    meter = budget.start(started)
    batches = execute_batches(
        statement.plan, snapshot, meter.budget.effective_rows_max, meter, batch_rows
    )
    converters = prepared.converters
    if converters is not None:
        batches = ([_convert(row, converters) for row in batch] for batch in batches)
    return statement.columns, batches


def _unmoved(datastore: Datastore, schema: ModuleSchema) -> None:
    if datastore.schema is not schema:
        raise _SchemaMoved


def _run_once(
    core: DatabaseCore,
    text: str,
    params: Mapping[str, Any] | None,
    sender: Identity,
    budget: QueryBudget,
    started: float,
) -> QueryResult:
    schema = core.module.schema
    owner = core.owner
    restricted = restricts(schema, sender, owner)
    prepared = STATEMENTS.get(text, schema, params, restricted)
    if prepared is None:
        if is_view_change(text):
            return change_view(core, text, sender)
        views = core.sql_views
        statement = prepare(text, schema, params, sender, restricted=restricted, views=views.views)
        if views.names_any(text):  # a view may be dropped or replaced: not cached
            prepared = cache_entry(statement, schema)
        else:
            prepared = STATEMENTS.put(text, schema, params, statement, restricted)
    if sender is not owner and sender != owner:
        _check_permissions(core, prepared.statement, sender)
    point = prepared.point
    if point is not None:
        return rows_result(point.columns, _point_rows(core, point, params, sender, budget, schema))
    statement = prepared.statement
    if prepared.parametrised:
        statement = bind(statement, param_values(params, sender))
    if isinstance(statement, Explain):
        inner = statement.statement  # join orders are chosen for the tables' sizes now
        snapshot = (
            core.read_snapshot(plan_tables(inner.plan))
            if isinstance(inner, SelectStatement)
            else None
        )
        lines = explain_statement(inner, snapshot)
        if statement.logical is not None:  # a SELECT: how a subscription would be kept
            lines = [*lines, maintenance_of(statement.logical, text)]
        return QueryResult(("plan",), [(line,) for line in lines])
    if isinstance(statement, SelectStatement):
        return _select(core, statement, prepared.converters, budget.start(started), schema)
    wire = [text, _wire_params(params)]
    if isinstance(statement, InsertStatement):
        binding = core.module.rows[statement.table.name]
        insert_statement = statement

        def insert(tx: Transaction, datastore: Datastore) -> tuple[int, list[Any]]:
            _unmoved(datastore, schema)
            return apply_insert(
                insert_statement,
                datastore,
                lambda table, rows, stored, on_conflict: insert_all(
                    tx, table, binding, rows, stored, on_conflict=on_conflict
                ),
            )

        (count, returned), offset = run_transaction(
            core, SQL_REDUCER, insert, lambda _: wire, sender
        )
    elif isinstance(statement, UpdateStatement):
        update = statement

        def run_update(tx: Transaction, datastore: Datastore) -> tuple[int, list[Any]]:
            _unmoved(datastore, schema)
            return update_rows(update, datastore, tx)

        (count, returned), offset = run_transaction(
            core, SQL_REDUCER, run_update, lambda _: wire, sender
        )
    else:
        assert isinstance(statement, DeleteStatement)
        delete = statement

        def run_delete(tx: Transaction, datastore: Datastore) -> tuple[int, list[Any]]:
            _unmoved(datastore, schema)
            return delete_rows(delete, datastore, tx)

        (count, returned), offset = run_transaction(
            core, SQL_REDUCER, run_delete, lambda _: wire, sender
        )
    columns = () if statement.returning is None else statement.returning.columns
    return QueryResult(columns, returned, rows_affected=count, tx_offset=offset)


def _point_rows(
    core: DatabaseCore,
    point: PointLookup,
    params: Mapping[str, Any] | None,
    sender: Identity,
    budget: QueryBudget,
    schema: ModuleSchema,
) -> list[tuple[Any, ...]]:
    """``SELECT ... WHERE pk = :key``: one dict lookup under the lock, no operators
    (O(1) under the lock, so no snapshot is needed); its rows, none or one."""
    name = point.param
    if name is None:
        key = point.key
    else:
        key = point.coerce(params[name] if params and name in params else sender)
    # What ``db.read`` does, inlined: this is the hottest path of the SQL layer.
    with core.lock:
        datastore = core.datastore
        if datastore.schema is not schema:
            raise _SchemaMoved
        row = datastore.tables[point.table].rows.get(key)
        seen = core.offset
    if core.persistence.replicator is not None:
        core.persistence.wait_durable(seen)  # cluster mode: as ``_select`` (its comment)
    if row is None:
        return []
    if budget.rows_max is not None or limits.query_rows_max < 1:
        limit = budget.effective_rows_max
        if limit < 1:
            budget.start().too_many_rows(limit)
    if point.project is not None:
        row = point.project(row)
    if point.converters is not None:
        row = _convert(row, point.converters)
    return [row]


def _convert(row: tuple[Any, ...], converters: tuple[Converter | None, ...]) -> tuple[Any, ...]:
    return tuple(
        v if c is None or v is None else c(v) for c, v in zip(converters, row, strict=True)
    )


def _select(
    core: DatabaseCore,
    statement: SelectStatement,
    converters: tuple[Converter | None, ...] | None,
    meter: Meter,
    schema: ModuleSchema,
) -> QueryResult:
    snapshot = core.read_snapshot(plan_tables(statement.plan))
    seen = core.offset  # at least the snapshot's: it may be read after another commit
    _unmoved(snapshot, schema)
    rows = execute(statement.plan, snapshot, meter.budget.effective_rows_max, meter)
    if converters is not None:
        rows = [_convert(row, converters) for row in rows]
    if core.persistence.replicator is not None:
        # Cluster mode: the snapshot may hold transactions JetStream has not acknowledged
        # yet, which a deposed leader never commits. Answer once they are (or fail with
        # the log's error): a read never shows what was not committed (issue 19's
        # history check found such a read).
        core.persistence.wait_durable(seen)
    return QueryResult(statement.columns, rows)


def _check_permissions(core: DatabaseCore, statement: Any, sender: Identity) -> None:
    if sender == core.owner:
        return
    inner = statement.statement if isinstance(statement, Explain) else statement
    if not isinstance(inner, SelectStatement):
        raise PermissionDenied("only the database owner may change data through SQL")
    for name in sorted(inner.tables):
        table = core.module.schema.table(name)
        if table is not None and not table.public:
            raise PermissionDenied(
                f"table {name!r} is private: only the database owner and its reducers read it"
            )


def _wire_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters in their JSON form, for the log record (readable by an auditor)."""
    return {name: json_form(value, exact_ints=True) for name, value in (params or {}).items()}


# --- Transaction blocks (issue 22: the PostgreSQL wire protocol's BEGIN ... COMMIT) ---


def run_sql_block(
    core: DatabaseCore,
    statements: list[tuple[str, Mapping[str, Any] | None]],
    sender: Identity,
    budget: QueryBudget,
    apply: bool,
    expect: list[int | None] | None = None,
) -> list[QueryResult]:
    """Run several statements as one transaction: every one but the last is DML, the
    last may be a SELECT, which then sees the writes before it (read-your-writes).

    With ``apply`` the writes commit as one record (reducer ``__sql__``, arguments the
    list of ``[text, params]`` pairs); without, they are rolled back once the results
    are known: the PostgreSQL port runs a block's statements this way as they arrive
    (to report each one's row count) and applies them all at ``COMMIT``
    (docs/design/pgwire.md, "Transaction blocks"). Only the owner may write, so only the owner gets
    here with DML; the writer lock is held for the whole run.

    ``expect``: the row count each statement reported when it was first run; if one
    now differs (another writer committed in between and changed what it matches),
    ``BlockChanged`` is raised and nothing is applied.

    Raises:
        SqlError, PermissionDenied, Conflict: as ``run_sql``; nothing was changed.
        BlockChanged: a statement's row count differs from ``expect``.
    """
    started = monotonic()
    schema = core.module.schema
    restricted = restricts(schema, sender, core.owner)
    prepared = []
    for text, params in statements:
        check_sizes(params, budget)
        statement = prepare(
            text, schema, params, sender, restricted=restricted, views=core.sql_views.views
        )
        if sender != core.owner:
            _check_permissions(core, statement, sender)
        if isinstance(statement, Explain):
            raise InvalidRequest("EXPLAIN inside a transaction block with writes is refused")
        if has_params(statement):
            statement = bind(statement, param_values(params, sender))
        prepared.append(statement)
    results: list[QueryResult] = []
    with core.lock:
        if core.closed:
            raise InvalidRequest(f"database {str(core.path)!r} is closed")
        _unmoved(core.datastore, schema)
        now_us = next_timestamp_us(core)
        tx = Transaction()
        try:
            for statement in prepared:
                if isinstance(statement, SelectStatement):
                    meter = budget.start(started)
                    rows = execute(statement.plan, core.datastore, budget.effective_rows_max, meter)
                    results.append(QueryResult(statement.columns, rows))
                    continue
                count, returned = _apply_dml(core, statement, tx)
                if expect is not None and expect[len(results)] != count:
                    raise BlockChanged(
                        f"statement {len(results) + 1} {BLOCK_CHANGED} "
                        f"{count} rows, not the {expect[len(results)]} it reported: another "
                        "transaction committed in between; nothing was applied, run the "
                        "block again"
                    )
                columns = () if statement.returning is None else statement.returning.columns
                results.append(QueryResult(columns, returned, rows_affected=count))
            if not apply or all(isinstance(s, SelectStatement) for s in prepared):
                tx.rollback()  # a dry run, or nothing to commit (no empty record)
                return results
            wire = [[text, _wire_params(params)] for text, params in statements]
            offset, changes = commit(core, tx, SQL_REDUCER, wire, sender, None, now_us)
        except BaseException:
            tx.rollback()
            raise
        publish(core, offset, now_us, changes)
    core.persistence.wait_durable(offset)
    return [
        QueryResult(r.columns, r.rows, rows_affected=r.rows_affected, tx_offset=offset)
        for r in results
    ]


BLOCK_CHANGED = "of the transaction block now changes"
"""Words every ``BlockChanged`` message holds: its code is ``conflict``, as a duplicate
key's, and a PostgreSQL session forwarded a block's error by a follower tells the two
apart by them (40001, not 23505: ``pgwire/sqlstate.py``)."""


class BlockChanged(Conflict):
    """A transaction block's writes no longer do what they reported (``expect``)."""


def _apply_dml(core: DatabaseCore, statement: Any, tx: Transaction) -> tuple[int, list[Any]]:
    """One INSERT, UPDATE or DELETE inside ``tx`` (the caller holds the lock)."""
    datastore = core.datastore
    if isinstance(statement, InsertStatement):
        binding = core.module.rows[statement.table.name]
        return apply_insert(
            statement,
            datastore,
            lambda table, rows, stored, on_conflict: insert_all(
                tx, table, binding, rows, stored, on_conflict=on_conflict
            ),
        )
    if isinstance(statement, UpdateStatement):
        return update_rows(statement, datastore, tx)
    assert isinstance(statement, DeleteStatement)
    return delete_rows(statement, datastore, tx)
