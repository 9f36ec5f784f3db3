"""The blocking client: the async ``Client`` on an event loop in a background thread.

Every method hands its work to that loop and waits for the result, so a program without
asyncio gets the same client. **Callbacks run on the background thread**, after the
whole transaction is applied, as in the async client; guard what they share with the
main thread. Reading the cache (``table(...).iter()``, ``count``, ``find``) also runs on
that thread and returns a snapshot, so a read never sees half a transaction.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from cosmictron.client.cache import RowFactory, TableCache
from cosmictron.client.callbacks import (
    AppliedCallback,
    DeleteCallback,
    EndedCallback,
    ErrorCallback,
    InsertCallback,
    ModuleUpdatedCallback,
    StalenessCallback,
    UpdateCallback,
)
from cosmictron.client.connecting import connect
from cosmictron.client.connection import Client, ClientStatistics

T = TypeVar("T")

STOP_TIMEOUT_S = 30.0


class SyncTable:
    """A table's cache, read on the client's thread: ``iter`` returns a list snapshot."""

    def __init__(self, client: SyncClient, name: str) -> None:
        self._client = client
        self.name = name

    def _cache(self) -> TableCache:
        return self._client.client.table(self.name)

    def iter(self) -> list[Any]:
        """Every cached row (a snapshot list)."""
        return self._client._on_loop(lambda: list(self._cache().iter()))

    def count(self) -> int:
        return self._client._on_loop(lambda: self._cache().count())

    def find(self, *key: Any, by: str = "primary_key") -> Any:
        """The row with this unique key, or None (see ``TableCache.find``)."""
        return self._client._on_loop(lambda: self._cache().find(*key, by=by))


class SyncClient:
    """The blocking twin of ``Client``; make one with ``connect_sync``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self._loop = loop
        self._thread = thread
        self.client: Client = None  # type: ignore[assignment]  # set by connect_sync

    @property
    def identity(self) -> Any:
        return self.client.identity

    @property
    def token(self) -> str | None:
        return self.client.token

    @property
    def tx_offset(self) -> int | None:
        return self.client.tx_offset

    def table(self, name: str) -> SyncTable:
        self._on_loop(lambda: self.client.table(name))  # NotFound now, not at first read
        return SyncTable(self, name)

    def on_insert(self, callback: InsertCallback) -> InsertCallback:
        """As ``Client.on_insert``; the callback runs on the client's thread."""
        return self.client.on_insert(callback)

    def on_delete(self, callback: DeleteCallback) -> DeleteCallback:
        return self.client.on_delete(callback)

    def on_update(self, callback: UpdateCallback) -> UpdateCallback:
        return self.client.on_update(callback)

    def on_applied(self, callback: AppliedCallback) -> AppliedCallback:
        return self.client.on_applied(callback)

    def on_error(self, callback: ErrorCallback) -> ErrorCallback:
        return self.client.on_error(callback)

    def on_subscription_ended(self, callback: EndedCallback) -> EndedCallback:
        """As ``Client.on_subscription_ended``; runs on the client's thread."""
        return self.client.on_subscription_ended(callback)

    def on_module_updated(self, callback: ModuleUpdatedCallback) -> ModuleUpdatedCallback:
        """As ``Client.on_module_updated``; runs on the client's thread."""
        return self.client.on_module_updated(callback)

    def on_staleness(self, callback: StalenessCallback) -> StalenessCallback:
        """As ``Client.on_staleness``; runs on the client's thread."""
        return self.client.on_staleness(callback)

    @property
    def stale(self) -> bool:
        """As ``Client.stale``: the server node says its copy is stale (cluster mode)."""
        return self.client.stale

    @property
    def queries(self) -> tuple[str, ...]:
        return self._on_loop(lambda: self.client.queries)

    def subscribe(self, *queries: str) -> int:
        return self._wait(self.client.subscribe(*queries))

    def call(self, reducer: str, *args: Any, **kwargs: Any) -> Any:
        """As ``Client.call``: the return value, or the reducer's error raised."""
        return self._wait(self.client.call(reducer, *args, **kwargs))

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._wait(self.client.sql(query, params))

    def wait_applied(self, tx_offset: int) -> None:
        self._wait(self.client.wait_applied(tx_offset))

    def wait_caught_up(self) -> None:
        self._wait(self.client.wait_caught_up())

    def save_identity(self) -> None:
        self.client.save_identity()

    def drop_connection(self) -> None:
        """As ``Client.drop_connection`` (for tests)."""
        self._wait(self.client.drop_connection())

    def statistics(self) -> ClientStatistics:
        return self._on_loop(self.client.statistics)

    def hold_reconnect(self) -> None:
        """As ``Client.hold_reconnect`` (for tests)."""
        self._loop.call_soon_threadsafe(self.client.hold_reconnect)

    def allow_reconnect(self) -> None:
        self._loop.call_soon_threadsafe(self.client.allow_reconnect)

    def close(self) -> None:
        """Close the connection and stop the background thread."""
        if not self._thread.is_alive():
            return
        try:
            if self.client is not None:
                self._wait(self.client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_S)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _wait(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _on_loop(self, read: Callable[[], T]) -> T:
        async def run() -> T:
            return read()

        return self._wait(run())


def connect_sync(
    database: str,
    *queries: str,
    server: str | None = None,
    token: str | None = None,
    use_saved_token: bool = True,
    row_types: Mapping[str, RowFactory] | None = None,
    protocol: str = "msgpack",
) -> SyncClient:
    """``connect`` for programs without asyncio (same arguments, same errors).

    The client runs on a daemon thread of its own until ``close``; callbacks run there.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=_serve, args=(loop,), name="cosmictron-client", daemon=True)
    thread.start()
    client = SyncClient(loop, thread)
    try:
        client.client = client._wait(
            connect(
                database,
                *queries,
                server=server,
                token=token,
                use_saved_token=use_saved_token,
                row_types=row_types,
                protocol=protocol,
            )
        )
    except BaseException:
        client.close()
        raise
    return client


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()
