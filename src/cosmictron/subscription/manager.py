"""Subscriptions: registration, the per-commit delta pass, and delivery to callbacks.

``SubscriptionManager`` is created by the host with the datastore, the writer lock and
a way to read the current offset; the host's ``publish`` calls ``on_commit`` before the
other commit listeners while there are live queries (``live``), so it runs under the
writer lock, in commit order, after the transaction is published.

* ``subscribe`` compiles each query (``compile.compile_live``), evaluates the initial
  rows on a snapshot off the writer lock (under the caller's query budget; ``initial.py``),
  and registers the subscription under the lock if none of the tables they read changed
  meanwhile (else evaluates again): the initial rows are the state at offset N and the
  first update is for a later offset, with no gap and no overlap.
* Identical queries (same plan after binding parameters and ``:sender``, same schema)
  share one ``LiveQuery``, whose delta is computed once per transaction and fanned out.
  ``index.QueryIndex`` maps each table name to the live queries that read it, so a
  transaction touching none of a query's tables costs that query nothing. A query
  with an equality to a constant on a table (``LiveQuery.guards``) is indexed under
  that value instead: queries differing only in a constant (one per ``:sender`` under
  row-level security) cost a transaction only those its changed rows name. A query
  restricted by a join visibility filter is also indexed under the tables that filter
  reads (``LiveQuery.reads``), by a guard where every read of that table has one.
* A subscription's update merges its queries' deltas per table (a subscription's rows
  of a table are the bag sum of its queries' results; ``fanout.merged_update``),
  converted to Python values as ``db.sql`` returns them. It is sent only when something
  changed. Subscribers whose changed queries are the same share one message object:
  treat it as read-only.
* Callbacks run synchronously, under the writer lock, in commit order. An exception in
  a callback is logged and the subscription kept. A callback that itself commits (a
  reducer call, DML) does not reorder updates: updates are queued and a re-entrant
  commit only appends to the queue, which the outermost delivery drains in order.

One module, a little over 400 lines: registration, the per-commit pass and delivery share
the manager's queue and lock; the evaluation itself lives in the modules below.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore, TableChange
from cosmictron.errors import CosmictronError, InvalidRequest, PermissionDenied, SubscriptionError
from cosmictron.query.budget import DEFAULT_BUDGET, QueryBudget
from cosmictron.query.cache import Converter
from cosmictron.query.visibility import restricts
from cosmictron.subscription.compile import compile_live, maintenance
from cosmictron.subscription.delta import TxView
from cosmictron.subscription.fanout import merged_update, to_python
from cosmictron.subscription.index import QueryIndex
from cosmictron.subscription.initial import evaluate, locked_meter, unchanged
from cosmictron.subscription.live import LiveQuery
from cosmictron.subscription.result_shape import QueryResultName
from cosmictron.subscription.terms import Row
from cosmictron.values import Identity, Timestamp

logger = logging.getLogger(__name__)

UpdateCallback = Callable[[dict[str, Any]], Any]
ErrorCallback = Callable[[SubscriptionError], Any]


class Subscription:
    """One subscriber's set of queries. ``initial`` holds the rows at ``tx_offset``.

    ``error`` is set (and ``on_error`` called) when the subscription is ended by the
    database rather than by ``unsubscribe``.
    """

    def __init__(
        self,
        manager: SubscriptionManager,
        queries: tuple[LiveQuery, ...],
        on_update: UpdateCallback | None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self._manager = manager
        self.queries = queries
        self.on_update = on_update
        self.on_error = on_error
        self.initial: dict[str, Any] = {}
        self.active = True
        self.error: SubscriptionError | None = None

    @property
    def tx_offset(self) -> int:
        offset: int = self.initial["tx_offset"]
        return offset

    def explain(self) -> list[str]:
        """EXPLAIN for a subscription: per query, how it is kept up to date
        (incremental or re-evaluated, and why), then its plan."""
        lines: list[str] = []
        for query in self.queries:
            lines.append(maintenance(query))
            lines.extend(f"  {line}" for line in query.plan_lines())
        return lines

    def unsubscribe(self) -> None:
        """Stop updates (idempotent); none is delivered after this returns."""
        self._manager.unsubscribe(self)

    def __repr__(self) -> str:
        texts = [query.text for query in self.queries]
        return f"Subscription({texts!r}, active={self.active})"


class SubscriptionManager:
    """Every live subscription of one database."""

    def __init__(
        self,
        datastore: Datastore,
        schema: Any,
        lock: threading.RLock,
        offset: Callable[[], int],
        owner: Identity,
        views: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self._datastore = datastore
        self._schema = schema
        self._lock = lock
        self._offset = offset
        self._owner = owner
        self._views = views if views is not None else dict
        """The views a subscribed query may name, as they are now (``query/views.py``)."""
        self._index = QueryIndex(datastore)
        self.live = self._index.queries
        """The live queries by key (the index's own dict, never replaced): while it is
        empty a commit has nothing to maintain, so the commit path skips ``on_commit``."""
        self._pending: list[tuple[Subscription, dict[str, Any] | SubscriptionError]] = []
        self._delivering = False
        self._active = 0
        self.maintenance_seconds = 0.0

    # -- registering -------------------------------------------------------------------

    def subscribe(
        self,
        queries: Sequence[str],
        on_update: UpdateCallback | None,
        params: Mapping[str, Any] | None,
        sender: Identity,
        on_error: ErrorCallback | None = None,
        budget: QueryBudget | None = None,
        then: Callable[[Subscription, Datastore], Any] | None = None,
    ) -> Subscription:
        """Subscribe to ``queries``; see ``Database.subscribe``.

        The initial rows are evaluated on a snapshot, off the writer lock, under
        ``budget``; then, under the lock, if no table they read changed meanwhile, the
        subscription is registered with them (the state at the current offset). If one
        did, they are evaluated again, up to ``limits.subscription_snapshot_attempts_max``
        times, and then under the lock for at most ``subscription_locked_time_s_max``.
        ``then(subscription, datastore)`` runs in the same critical section, after
        registering (the server schedules ``SubscribeApplied`` there).

        Raises:
            QueryCancelled, QueryTooCostly: the initial evaluation exceeded ``budget``.
        """
        if isinstance(queries, str):
            queries = [queries]
        if not queries:
            raise InvalidRequest("subscribe needs at least one query")
        budget = DEFAULT_BUDGET if budget is None else budget
        meter = budget.start()
        restricted = restricts(self._schema, sender, self._owner)
        compiled = [
            compile_live(text, self._schema, params, sender, restricted, self._views())
            for text in queries
        ]
        if sender != self._owner:
            for query in compiled:
                for name in sorted(query.tables):
                    table = self._schema.table(name)
                    if table is not None and not table.public:
                        raise PermissionDenied(
                            f"table {name!r} is private: only the database owner and its "
                            f"reducers read it"
                        )
        rows_max = budget.effective_rows_max
        names: set[str] = set().union(*(query.reads for query in compiled))
        for _ in range(max(limits.subscription_snapshot_attempts_max, 0)):
            with self._lock:
                snapshot = self._datastore.snapshot(names)
            evaluated = evaluate(compiled, snapshot, rows_max, meter)
            with self._lock:
                if unchanged(snapshot, self._datastore):
                    return self._add(compiled, evaluated, on_update, on_error, then)
        with self._lock:
            locked = locked_meter(budget, meter)
            evaluated = evaluate(compiled, self._datastore, rows_max, locked)
            return self._add(compiled, evaluated, on_update, on_error, then)

    def _add(
        self,
        compiled: list[LiveQuery],
        evaluated: dict[Any, list[Row]],
        on_update: UpdateCallback | None,
        on_error: ErrorCallback | None,
        then: Callable[[Subscription, Datastore], Any] | None,
    ) -> Subscription:
        """Register a subscription whose rows are current (under the writer lock)."""
        shared = []
        fresh: dict[Any, LiveQuery] = {}
        for query in compiled:
            existing = self._index.queries.get(query.key) or fresh.get(query.key)
            if existing is not None:
                query = existing
            fresh[query.key] = query
            shared.append(query)
        subscription = Subscription(self, tuple(shared), on_update, on_error)
        self._active += 1
        tables: dict[str, list[Row]] = {}
        converters: dict[str, tuple[Converter | None, ...] | None] = {}
        for query in shared:
            if query.key in self._index.queries and query.top_n:
                rows = query.current()
            else:
                rows = evaluated[query.key]
            tables.setdefault(query.table_name, []).extend(rows)
            converters[query.table_name] = query.converters
        for query in shared:
            if query.key not in self._index.queries:
                self._index.register(query)
            query.subscribers.add(subscription)
        subscription.initial = {
            "tx_offset": self._offset(),
            "tables": [
                _initial_table(name, to_python(rows, converters[name]))
                for name, rows in tables.items()
            ],
        }
        if then is not None:
            then(subscription, self._datastore)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if not subscription.active:
                return
            subscription.active = False
            self._active -= 1
            for query in subscription.queries:
                query.subscribers.discard(subscription)
                if not query.subscribers:
                    self._index.forget(query)

    @property
    def subscription_count(self) -> int:
        """How many subscriptions are active."""
        return self._active

    @property
    def query_count(self) -> int:
        """How many distinct live queries are maintained (shared ones count once)."""
        return len(self._index.queries)

    def live_queries(self) -> list[LiveQuery]:
        return list(self._index.queries.values())

    # -- each commit ---------------------------------------------------------------------

    def on_commit(self, offset: int, timestamp: Timestamp, changes: list[TableChange]) -> None:
        """The commit listener: compute each affected query's delta once, fan it out.

        Its time is added to ``maintenance_seconds`` (deltas and delivery to callbacks):
        the cost subscriptions add to a transaction, measured where it is spent.
        """
        if not self._index.queries or not changes:
            return
        started = time.perf_counter()
        try:
            self._maintain(offset, timestamp, changes)
        finally:
            self.maintenance_seconds += time.perf_counter() - started

    def _maintain(self, offset: int, timestamp: Timestamp, changes: list[TableChange]) -> None:
        affected = self._index.affected(changes)
        if not affected:
            return
        tx = TxView(self._datastore, changes)
        deltas: dict[LiveQuery, tuple[list[Row], list[Row]]] = {}
        for query in affected:
            try:
                deltas[query] = query.delta(tx)
            except Exception as exc:
                # A bug or a resource limit (a top-N refill over the row limit): the
                # query's state can no longer be trusted, so its subscriptions end.
                logger.exception("subscription query %r failed at offset %d", query.text, offset)
                reason = exc if isinstance(exc, CosmictronError) else f"{type(exc).__name__}: {exc}"
                self._end_query(
                    query,
                    f"the query {query.text!r} could not be kept up to date at offset "
                    f"{offset}: {reason}",
                )
        for query in deltas:
            if query.reevaluated:
                self._index.refresh(query)  # its filter's set may have changed
        updates: dict[Subscription, list[LiveQuery]] = {}
        for query, (inserts, deletes) in deltas.items():
            if inserts or deletes:
                for subscription in query.subscribers:
                    updates.setdefault(subscription, []).append(query)
        built: dict[tuple[LiveQuery, ...], dict[str, Any] | None] = {}
        for subscription, queries in updates.items():
            # Subscribers of the same changed queries share one message (read-only).
            shape = tuple(query for query in subscription.queries if query in queries)
            if shape not in built:
                built[shape] = merged_update(offset, timestamp, shape, deltas)
            message = built[shape]
            if message is not None:
                self._pending.append((subscription, message))
        self._deliver()

    # -- ending subscriptions ------------------------------------------------------------

    def schema_changed(self, schema: Any) -> None:
        """Move every live query to a new module schema (a hot-swap), under the writer lock.

        A query whose tables are unchanged is recompiled and keeps its subscribers; one
        that reads a dropped or changed table, or no longer compiles, is ended with a
        ``SubscriptionError`` naming why. The rest keep running.
        """
        with self._lock:
            old, self._schema = self._schema, schema
            for query in list(self._index.queries.values()):
                reason = _incompatibility(query, old, schema)
                replacement = None
                if reason is None:
                    text, params, sender, restricted = query.origin
                    try:
                        replacement = compile_live(
                            text, schema, params, sender, restricted, self._views()
                        )
                    except CosmictronError as exc:
                        reason = f"the query {text!r} no longer fits the module: {exc}"
                if replacement is None:
                    self._end_query(query, reason or "the module changed")
                    continue
                self._replace(query, replacement)
            self._deliver()

    def end_all(self, reason: str) -> None:
        """End every subscription with ``reason``, under the writer lock.

        For a change no delta describes, such as a module update that deletes every row.
        """
        with self._lock:
            for query in list(self._index.queries.values()):
                self._end_query(query, reason)
            self._deliver()

    def _replace(self, query: LiveQuery, replacement: LiveQuery) -> None:
        """Hand ``query``'s subscribers over to ``replacement`` (same result, new schema)."""
        existing = self._index.queries.get(replacement.key)
        if existing is not None and existing is not query:
            replacement = existing
        elif (
            replacement.top_n
            or replacement.filter_tables
            or replacement.maintenance != "incremental"
        ):
            # The window, the result a diff needs, or a semi-join's counts.
            replacement.initial(self._datastore)
        self._index.forget(query)
        if replacement.key not in self._index.queries:
            self._index.register(replacement)
        for subscription in list(query.subscribers):
            subscription.queries = tuple(
                replacement if q is query else q for q in subscription.queries
            )
            replacement.subscribers.add(subscription)
        query.subscribers.clear()

    def _end_query(self, query: LiveQuery, reason: str) -> None:
        for subscription in list(query.subscribers):
            self._end(subscription, SubscriptionError(reason))
        self._index.forget(query)

    def _end(self, subscription: Subscription, error: SubscriptionError) -> None:
        """End ``subscription`` for ``error``; its ``on_error`` runs after earlier updates."""
        if not subscription.active:
            return
        self.unsubscribe(subscription)
        subscription.error = error
        self._pending.append((subscription, error))

    def _deliver(self) -> None:
        if self._delivering:
            return  # a callback committed: the outer delivery sends this after the rest
        self._delivering = True
        try:
            while self._pending:
                subscription, message = self._pending.pop(0)
                if isinstance(message, SubscriptionError):
                    self._tell_error(subscription, message)
                    continue
                if not subscription.active or subscription.on_update is None:
                    continue
                try:
                    subscription.on_update(message)
                except Exception:
                    logger.exception(
                        "subscription callback %r failed at offset %d (the subscription is kept)",
                        subscription.on_update,
                        message["tx_offset"],
                    )
        finally:
            self._delivering = False

    def _tell_error(self, subscription: Subscription, error: SubscriptionError) -> None:
        logger.warning("subscription ended: %s", error)
        if subscription.on_error is None:
            return
        try:
            subscription.on_error(error)
        except Exception:
            logger.exception("subscription error callback %r failed", subscription.on_error)


def _initial_table(name: str, rows: list[Row]) -> dict[str, Any]:
    """One table of a subscription's initial rows; a query result's also names its
    columns (``result_shape.py``)."""
    if isinstance(name, QueryResultName):
        return {"table_name": name, "columns": list(name.columns), "rows": rows}
    return {"table_name": name, "rows": rows}


def _incompatibility(query: LiveQuery, old: Any, new: Any) -> str | None:
    """Why ``query`` cannot survive the move from schema ``old`` to ``new``, if it cannot."""
    for name in sorted(query.tables):
        before, after = old.table(name), new.table(name)
        if after is None:
            return f"table {name!r} was dropped by a module update"
        if before is not None and before.describe() != after.describe():
            return (
                f"table {name!r} was changed by a module update (its columns, keys or "
                f"indexes); subscribe again for its new rows"
            )
    return None
