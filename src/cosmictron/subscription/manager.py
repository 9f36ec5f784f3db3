"""Subscriptions: registration, the per-commit delta pass, and delivery to callbacks.

``SubscriptionManager`` is created by the host with the datastore, the writer lock and
a way to read the current offset; ``on_commit`` is registered as a commit listener, so
it runs under the writer lock, in commit order, after the transaction is published.

* ``subscribe`` compiles each query (``live.compile_live``), evaluates the initial rows
  and registers the subscription in one critical section of the writer lock: the
  initial rows are the state at offset N and the first update is for a later offset,
  with no gap and no overlap.
* Identical queries (same plan after binding parameters and ``:sender``, same schema)
  share one ``LiveQuery``, whose delta is computed once per transaction and fanned out.
  ``_by_table`` maps each table name to the live queries that read it, so a
  transaction touching none of a query's tables costs that query nothing.
* A subscription's update merges its queries' deltas per table (a subscription's rows
  of a table are the bag sum of its queries' results), converted to Python values as
  ``db.sql`` returns them. It is sent only when something changed. Subscribers whose
  changed queries are the same share one message object: treat it as read-only.
* Callbacks run synchronously, under the writer lock, in commit order. An exception in
  a callback is logged and the subscription kept. A callback that itself commits (a
  reducer call, DML) does not reorder updates: updates are queued and a re-entrant
  commit only appends to the queue, which the outermost delivery drains in order.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cosmictron.datastore import Datastore, TableChange
from cosmictron.errors import InvalidRequest, PermissionDenied
from cosmictron.query.cache import Converter
from cosmictron.subscription.live import LiveQuery, Row, TxView, compile_live
from cosmictron.values import Identity, Timestamp

logger = logging.getLogger(__name__)

UpdateCallback = Callable[[dict[str, Any]], Any]


class Subscription:
    """One subscriber's set of queries. ``initial`` holds the rows at ``tx_offset``."""

    def __init__(
        self,
        manager: SubscriptionManager,
        queries: tuple[LiveQuery, ...],
        on_update: UpdateCallback | None,
    ) -> None:
        self._manager = manager
        self.queries = queries
        self.on_update = on_update
        self.initial: dict[str, Any] = {}
        self.active = True

    @property
    def tx_offset(self) -> int:
        offset: int = self.initial["tx_offset"]
        return offset

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
    ) -> None:
        self._datastore = datastore
        self._schema = schema
        self._lock = lock
        self._offset = offset
        self._owner = owner
        self._queries: dict[Any, LiveQuery] = {}
        self._by_table: dict[str, set[LiveQuery]] = {}
        self._pending: list[tuple[Subscription, dict[str, Any]]] = []
        self._delivering = False

    # -- registering -------------------------------------------------------------------

    def subscribe(
        self,
        queries: Sequence[str],
        on_update: UpdateCallback | None,
        params: Mapping[str, Any] | None,
        sender: Identity,
    ) -> Subscription:
        """Subscribe to ``queries``; see ``Database.subscribe``."""
        if isinstance(queries, str):
            queries = [queries]
        if not queries:
            raise InvalidRequest("subscribe needs at least one query")
        compiled = [compile_live(text, self._schema, params, sender) for text in queries]
        if sender != self._owner:
            for query in compiled:
                for name in sorted(query.tables):
                    table = self._schema.table(name)
                    if table is not None and not table.public:
                        raise PermissionDenied(
                            f"table {name!r} is private: only the database owner and its "
                            f"reducers read it"
                        )
        with self._lock:
            shared = []
            fresh: dict[Any, LiveQuery] = {}
            for query in compiled:
                existing = self._queries.get(query.key) or fresh.get(query.key)
                if existing is not None:
                    query = existing
                fresh[query.key] = query
                shared.append(query)
            subscription = Subscription(self, tuple(shared), on_update)
            tables: dict[str, list[Row]] = {}
            converters: dict[str, tuple[Converter | None, ...] | None] = {}
            for query in shared:
                if query.key in self._queries and query.top_n:
                    rows = query.current()
                else:
                    rows = query.initial(self._datastore)
                tables.setdefault(query.table_name, []).extend(rows)
                converters[query.table_name] = query.converters
            for query in shared:
                if query.key not in self._queries:
                    self._queries[query.key] = query
                    for name in query.tables:
                        self._by_table.setdefault(name, set()).add(query)
                query.subscribers.add(subscription)
            subscription.initial = {
                "tx_offset": self._offset(),
                "tables": [
                    {"table_name": name, "rows": _python(rows, converters[name])}
                    for name, rows in tables.items()
                ],
            }
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if not subscription.active:
                return
            subscription.active = False
            for query in subscription.queries:
                query.subscribers.discard(subscription)
                if not query.subscribers and self._queries.get(query.key) is query:
                    del self._queries[query.key]
                    for name in query.tables:
                        readers = self._by_table.get(name)
                        if readers is not None:
                            readers.discard(query)
                            if not readers:
                                del self._by_table[name]

    @property
    def query_count(self) -> int:
        """How many distinct live queries are maintained (shared ones count once)."""
        return len(self._queries)

    def live_queries(self) -> list[LiveQuery]:
        return list(self._queries.values())

    # -- each commit ---------------------------------------------------------------------

    def on_commit(self, offset: int, timestamp: Timestamp, changes: list[TableChange]) -> None:
        """The commit listener: compute each affected query's delta once, fan it out."""
        if not self._by_table or not changes:
            return
        affected: set[LiveQuery] = set()
        for change in changes:
            readers = self._by_table.get(change.table.name)
            if readers:
                affected |= readers
        if not affected:
            return
        tx = TxView(self._datastore, changes)
        deltas: dict[LiveQuery, tuple[list[Row], list[Row]]] = {}
        for query in affected:
            try:
                deltas[query] = query.delta(tx)
            except Exception:
                # A bug or a resource limit (a top-N refill over the row limit): the
                # query's state can no longer be trusted, so its subscriptions end.
                logger.exception("subscription query %r failed at offset %d", query.text, offset)
                for subscription in list(query.subscribers):
                    self.unsubscribe(subscription)
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
                built[shape] = _update(offset, timestamp, shape, deltas)
            message = built[shape]
            if message is not None:
                self._pending.append((subscription, message))
        self._deliver()

    def _deliver(self) -> None:
        if self._delivering:
            return  # a callback committed: the outer delivery sends this after the rest
        self._delivering = True
        try:
            while self._pending:
                subscription, message = self._pending.pop(0)
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


def _update(
    offset: int,
    timestamp: Timestamp,
    queries: tuple[LiveQuery, ...],
    deltas: dict[LiveQuery, tuple[list[Row], list[Row]]],
) -> dict[str, Any] | None:
    """An update from these queries' deltas, merged per table (in query order)."""
    net: dict[str, Counter[Row]] = {}
    converters: dict[str, tuple[Converter | None, ...] | None] = {}
    for query in queries:  # a query listed twice counts twice (bag sum)
        inserts, deletes = deltas[query]
        counter = net.setdefault(query.table_name, Counter())
        counter.update(inserts)
        counter.subtract(deletes)
        converters[query.table_name] = query.converters
    tables = []
    for name, counter in net.items():
        inserts = [row for row, n in counter.items() if n > 0 for _ in range(n)]
        deletes = [row for row, n in counter.items() if n < 0 for _ in range(-n)]
        if inserts or deletes:
            tables.append(
                {
                    "table_name": name,
                    "inserts": _python(inserts, converters[name]),
                    "deletes": _python(deletes, converters[name]),
                }
            )
    if not tables:
        return None
    return {"tx_offset": offset, "timestamp": timestamp, "tables": tables}


def _python(rows: list[Row], converters: tuple[Converter | None, ...] | None) -> list[Row]:
    if converters is None:
        return list(rows)
    return [
        tuple(v if c is None or v is None else c(v) for c, v in zip(converters, row, strict=True))
        for row in rows
    ]
