"""The client's callback registry: who to tell when a transaction changes the cache.

``Client`` inherits ``CallbackRegistry`` so that ``client.on_insert(...)`` and the other
registrations stay methods of the client. The connection calls ``fire`` once per applied
transaction (or full resend), after the whole transaction is in the cache, so a callback
never sees half of one. A callback is user code, the edge of the SDK: its exception is
logged and the next callback still runs, so one bug cannot stop the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from cosmictron.client.cache import RowEvent
from cosmictron.client.schema import DatabaseSchema
from cosmictron.errors import CosmictronError, SubscriptionError
from cosmictron.values import Timestamp

# The logger the client has always used, so a logging setup that names it still works.
logger = logging.getLogger("cosmictron.client.connection")

InsertCallback = Callable[[str, Any], None]
DeleteCallback = Callable[[str, Any], None]
UpdateCallback = Callable[[str, Any, Any], None]
AppliedCallback = Callable[[int], None]
ErrorCallback = Callable[[CosmictronError], None]
EndedCallback = Callable[[str, SubscriptionError], None]
ModuleUpdatedCallback = Callable[[DatabaseSchema, list[str]], None]
StalenessCallback = Callable[[bool, int, Timestamp | None], None]


class CallbackRegistry:
    """The callbacks registered with ``on_*``, in registration order, per kind."""

    def __init__(self) -> None:
        self._inserts: list[InsertCallback] = []
        self._deletes: list[DeleteCallback] = []
        self._updates: list[UpdateCallback] = []
        self._applied: list[AppliedCallback] = []
        self._errors: list[ErrorCallback] = []
        self._ended_callbacks: list[EndedCallback] = []
        self._module_callbacks: list[ModuleUpdatedCallback] = []
        self._staleness_callbacks: list[StalenessCallback] = []

    def on_insert(self, callback: InsertCallback) -> InsertCallback:
        """Call ``callback(table, row)`` for each row a transaction adds (a decorator too)."""
        self._inserts.append(callback)
        return callback

    def on_delete(self, callback: DeleteCallback) -> DeleteCallback:
        """Call ``callback(table, row)`` for each row a transaction removes."""
        self._deletes.append(callback)
        return callback

    def on_update(self, callback: UpdateCallback) -> UpdateCallback:
        """Call ``callback(table, old, new)`` when a transaction changes a keyed row."""
        self._updates.append(callback)
        return callback

    def on_applied(self, callback: AppliedCallback) -> AppliedCallback:
        """Call ``callback(tx_offset)`` after each transaction (or full resend) is applied."""
        self._applied.append(callback)
        return callback

    def on_error(self, callback: ErrorCallback) -> ErrorCallback:
        """Call ``callback(error)`` when the server ends the subscription (a module update)."""
        self._errors.append(callback)
        return callback

    def on_subscription_ended(self, callback: EndedCallback) -> EndedCallback:
        """Call ``callback(query, error)`` for each subscribed query that ended for good.

        After a module update the client subscribes again to every query that still fits
        the new module; a query that no longer does (its table was dropped, a column it
        names is gone) is removed from the subscription, its rows leave the cache (with
        ``on_delete``), and this callback says which query and why (``str(error)``).
        """
        self._ended_callbacks.append(callback)
        return callback

    def on_module_updated(self, callback: ModuleUpdatedCallback) -> ModuleUpdatedCallback:
        """Call ``callback(schema, changed_tables)`` after the database's module changed.

        ``schema`` is the new ``DatabaseSchema`` (already ``client.schema``);
        ``changed_tables`` names the tables that changed shape or vanished, whose cached
        rows were dropped (with ``on_delete``) before this runs. It fires when the server
        announces an update (``ModuleUpdated``) and when a reconnect finds the schema
        changed while the client was away.
        """
        self._module_callbacks.append(callback)
        return callback

    def on_staleness(self, callback: StalenessCallback) -> StalenessCallback:
        """Call ``callback(stale, tx_offset, since)`` when the server node's copy of the
        database goes stale or is current again (cluster mode, docs/guide/sdk.md).

        ``stale`` True: the node lost touch with the cluster (NATS lost its quorum, or the
        node is cut off); the cache stays as of ``tx_offset`` and no update comes until it
        is current again; ``since`` (a ``Timestamp``) is when the node last heard from a
        quorum. ``stale`` False: current again (``since`` None); updates from
        ``tx_offset`` on follow. ``client.stale`` holds the last word.
        """
        self._staleness_callbacks.append(callback)
        return callback

    def _fire_staleness(self, stale: bool, tx_offset: int, since: Timestamp | None) -> None:
        for callback in self._staleness_callbacks:
            self._run_callback(callback, stale, tx_offset, since)

    def _fire_ended(self, query: str, error: SubscriptionError) -> None:
        for callback in self._ended_callbacks:
            self._run_callback(callback, query, error)

    def _fire_module_updated(self, schema: DatabaseSchema, changed: list[str]) -> None:
        for callback in self._module_callbacks:
            self._run_callback(callback, schema, changed)

    def _fire(self, events: Sequence[RowEvent], tx_offset: int) -> None:
        """Tell every callback about one applied transaction: its rows, then its offset."""
        for event in events:
            if event.kind == "insert":
                for insert in self._inserts:
                    self._run_callback(insert, event.table, event.new)
            elif event.kind == "delete":
                for delete in self._deletes:
                    self._run_callback(delete, event.table, event.old)
            else:
                for update in self._updates:
                    self._run_callback(update, event.table, event.old, event.new)
        for applied in self._applied:
            self._run_callback(applied, tx_offset)

    def _fire_error(self, error: CosmictronError) -> None:
        """Tell every ``on_error`` callback that the server ended the subscription."""
        for callback in self._errors:
            self._run_callback(callback, error)

    def _run_callback(self, callback: Callable[..., None], *args: Any) -> None:
        # A user's callback is the edge here: its bug must not stop the client.
        try:
            callback(*args)
        except Exception:
            logger.exception("a Cosmictron client callback raised")
