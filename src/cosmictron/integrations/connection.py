"""One way for the LangChain/LangGraph integrations to reach a database: embedded or SDK.

``CosmictronStore``, ``CosmictronVectorStore``, ``CosmictronCallbackHandler`` and the chat
history shim each take an embedded ``Database`` or a server's URL (DESIGN.md §8). This
module hides the difference behind four methods: ``call``/``acall`` (a reducer or a
procedure) and ``sql``/``asql`` (one statement, rows as dicts). In process, calls run
directly and their async forms on a worker thread; over the SDK, the connection runs on
an event loop thread of its own so that sync callers can wait on it and async callers
await it without blocking their own loop (the shape of ``CosmictronSaver``'s backends).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from cosmictron.host import Database

T = TypeVar("T")


class Connection:
    """What an integration needs from a database."""

    def call(self, name: str, *args: Any) -> Any:
        raise NotImplementedError

    async def acall(self, name: str, *args: Any) -> Any:
        raise NotImplementedError

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def asql(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Close what this connection opened (nothing, for an embedded database)."""

    def records(self, rows: list[dict[str, Any]], build: Callable[[dict[str, Any]], Any]) -> Any:
        """A ``list[<type>]`` argument: over the wire, objects keyed by field name."""
        return rows


class EmbeddedConnection(Connection):
    """A ``Database`` in this process (the caller opened it and closes it)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def records(self, rows: list[dict[str, Any]], build: Callable[[dict[str, Any]], Any]) -> Any:
        """In process, a ``list[<type>]`` argument takes the objects."""
        return [build(row) for row in rows]

    def call(self, name: str, *args: Any) -> Any:
        return self.db.call(name, *args)

    async def acall(self, name: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.db.call, name, *args)

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.db.sql(query, params).as_dicts()

    async def asql(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sql, query, params)


class RemoteConnection(Connection):
    """An SDK connection to a server's database, on an event loop thread of its own."""

    def __init__(self, url: str, database: str, token: str | None) -> None:
        from cosmictron.client import connect

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="cosmictron-integration", daemon=True
        )
        self.thread.start()
        try:
            self.client = self.wait(
                connect(database, server=url, token=token, use_saved_token=token is None)
            )
        except BaseException:
            self._stop_loop()
            raise

    def submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        if self.loop.is_closed() or not self.thread.is_alive():
            work.close()  # never started: no "never awaited" warning later
            raise RuntimeError("this connection is closed; make a new one")
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def wait(self, work: Coroutine[Any, Any, T]) -> T:
        return self.submit(work).result()

    async def awaited(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self.submit(work))

    def call(self, name: str, *args: Any) -> Any:
        return self.wait(self.client.call(name, *args))

    async def acall(self, name: str, *args: Any) -> Any:
        return await self.awaited(self.client.call(name, *args))

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.wait(self.client.sql(query, params))

    async def asql(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return await self.awaited(self.client.sql(query, params))

    def close(self) -> None:
        if not self.thread.is_alive():
            return
        try:
            self.wait(self.client.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


def connection_of(db: Database | Connection) -> Connection:
    """An embedded database wrapped, or a connection as given."""
    return EmbeddedConnection(db) if isinstance(db, Database) else db


def field_of(row: Any, name: str) -> Any:
    """A field of a returned value: an object in process, a JSON object over the SDK."""
    return row[name] if isinstance(row, Mapping) else getattr(row, name)
