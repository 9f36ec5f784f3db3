"""The async client: one WebSocket connection to one database, kept alive.

``Client`` speaks the ``v1.json.cosmictron`` protocol (docs/reference/websocket.md). One
task reads every server message in order and applies it; that order is the protocol's
guarantee, so the cache and the callbacks see transactions whole and in commit order.

Reconnecting. When the connection drops, requests waiting for a reply fail with
``ConnectionLost`` (a reducer call is never resent: it may have committed, and reducers
are not idempotent). The client then reconnects with backoff, as the identity the server
gave it, and subscribes again with ``since_tx_offset``, the offset of the last
transaction it applied. The server either replays what was missed (``resumed: true``)
or sends every row again (``resumed: false``); then the cache is replaced and callbacks
fire for the difference only. Either way the cache never shows a state the database
did not have.

All the client's queries form **one** subscription (one ``query_id``): the server then
sends one update per transaction, and a full resend replaces the whole cache at once.
``subscribe`` with new queries unsubscribes and subscribes afresh (a full resend).

This module is the connection itself: the socket, the reader task and its reconnect
loop, and the requests sent over it. Around it: ``connect.py`` finds the server, token
and schema and makes a ``Client``; ``callbacks.py`` holds the ``on_*`` registry the
reader fires; ``transport.py`` opens the socket and holds the protocol's constants;
``in_flight.py`` is the bounded table of requests awaiting a reply;
``cache.py`` holds the rows. What is left is one piece: the reader, the reconnect loop
and the requests share the socket, the subscription's query set and the offset applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from cosmictron import names
from cosmictron.client.cache import ClientCache, RowFactory, TableCache
from cosmictron.client.callbacks import CallbackRegistry
from cosmictron.client.in_flight import RepliesInFlight, Reply
from cosmictron.client.jsonforms import decode
from cosmictron.client.replies import error_from_reply
from cosmictron.client.schema import DatabaseSchema
from cosmictron.client.settings import SavedIdentity, Settings
from cosmictron.client.transport import (
    RECONNECT_DELAY_S_MAX,
    RECONNECT_DELAY_S_MIN,
    REPLY_TIMEOUT_S,
    open_socket,
    post_sql,
)
from cosmictron.errors import ConnectionLost, InvalidRequest, SubscriptionError
from cosmictron.values import ConnectionId, Identity, json_form

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientStatistics:
    """What the connection has been through, for tests, logs and dashboards."""

    connections: int
    """Connections made, the first one included."""
    resumes: int
    """Reconnections the server resumed exactly (``resumed: true``)."""
    full_resends: int
    """Subscriptions answered with every row (the first one included)."""
    tx_offset: int | None
    """The offset of the last transaction applied to the cache."""


class Client(CallbackRegistry):
    """A connection to one database: a live cache of the subscribed rows, calls, queries.

    Make one with ``connect``. Callbacks run on the event loop, after the whole
    transaction is in the cache; keep them short (the next transaction waits).
    """

    def __init__(
        self,
        url: str,
        database: str,
        schema: DatabaseSchema,
        token: str | None,
        row_types: Mapping[str, RowFactory] | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.database = database
        self.schema = schema
        self.token = token
        self.identity: Identity | None = None
        self.connection_id: ConnectionId | None = None
        self.cache = ClientCache(schema.tables, row_types)
        self.tx_offset: int | None = None
        """The offset of the last transaction applied to the cache (None before any)."""
        self._connections = 0
        self._resumes = 0
        self._full_resends = 0
        self._reconnect_allowed = asyncio.Event()
        self._reconnect_allowed.set()
        self._queries: list[str] = []
        self._query_id = 0
        self._in_flight = RepliesInFlight()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._connected = asyncio.Event()
        self._closed = False
        self._runner: asyncio.Task[None] | None = None

    # -- reading the cache ----------------------------------------------------------------

    def table(self, name: str) -> TableCache:
        """The cached rows of table ``name`` (``iter``, ``count``, ``find``); for a
        subscribed query whose rows are not one table's (a column list, an aggregate, a
        compound), ``name`` is the query's text as subscribed."""
        return self.cache.table(name)

    # -- requests -------------------------------------------------------------------------

    async def subscribe(self, *queries: str) -> int:
        """Subscribe to ``queries`` (replacing any earlier ones); return the offset applied.

        The cache then holds exactly their rows, and ``on_insert``/``on_delete`` have fired
        for the difference from what it held before.

        Raises:
            SubscriptionError: a query is bad or reads a private table.
        """
        if not queries:
            raise InvalidRequest("subscribe needs at least one SQL query")
        await self._connected.wait()
        ws = self._require_connection()
        if self._queries:
            unsubscribe = {"request_id": self._in_flight.next_id(), "query_id": self._query_id}
            await ws.send_str(json.dumps({"Unsubscribe": unsubscribe}))
        self._queries = list(queries)
        self.tx_offset = None  # a new query set: a full send, not a resume
        applied = await self._send_subscribe(ws)
        return int(applied["tx_offset"])

    async def call(self, reducer: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``reducer`` and return its return value (decoded by its declared type).

        When it returns, the cache already holds the call's own changes (the server
        sends a transaction's update before the call's result).

        Raises:
            ReducerFailed: the reducer raised; nothing it did was kept.
            NotFound: no such reducer. InvalidRequest: arguments that do not fit, or a
                name no reducer could have (``cosmictron.names``).
            ConnectionLost: the connection dropped before the result came; the call may
                or may not have committed, and it is not resent.
        """
        names.check_reducer(reducer)  # InvalidRequest before anything is sent
        info = self.schema.reducers.get(reducer)
        arguments: Any = json_form(list(args))
        if kwargs:
            if args and info is None:
                raise InvalidRequest("give arguments by position or by name, not both")
            named = dict(zip((p.name for p in info.params), args, strict=False)) if info else {}
            arguments = json_form({**named, **kwargs})
        reply = await self._request("CallReducer", reducer=reducer, args=arguments)
        if reply.get("status") != "committed":
            raise error_from_reply(reply.get("error_code"), str(reply.get("error")), reducer)
        value = reply.get("return_value")
        if info is not None and info.returns is not None:
            return decode(value, info.returns)
        return value

    async def sql(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run one SQL statement and return its rows, as objects in their JSON forms.

        Without ``params`` it is a ``OneOffQuery`` over the connection (its reply follows
        every update sent before it). The WebSocket protocol has no parameters, so with
        ``params`` it is ``POST /v1/database/{name}/sql`` with the same token.

        Raises:
            SqlError: the statement cannot run. PermissionDenied: a private table.
        """
        if params:
            assert self._http is not None
            return await post_sql(self._http, self.url, self.database, self.token, query, params)
        reply = await self._request("OneOffQuery", query_string=query)
        if "error" in reply:
            raise error_from_reply(reply.get("error_code"), str(reply["error"]))
        return list(reply["tables"][0]["rows"]) if reply.get("tables") else []

    async def wait_applied(self, tx_offset: int) -> None:
        """Wait until the cache reflects every transaction up to ``tx_offset``.

        A transaction that changed none of the subscribed rows sends no update, so when
        the cache is behind this waits with ``wait_caught_up``.
        """
        if self.tx_offset is None or self.tx_offset < tx_offset:
            await self.wait_caught_up()

    async def wait_caught_up(self) -> None:
        """Wait until every update the server has sent so far is in the cache.

        It asks a query of the server: the reply follows every update queued before it.
        Across a dropped connection it asks again on the next one, after the resume.
        """
        while True:
            try:
                await self._request("OneOffQuery", query_string="SELECT 1 AS caught_up")
                return
            except ConnectionLost:
                if self._closed:
                    raise

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect once (raising what refuses it), then keep the connection alive."""
        self._http = aiohttp.ClientSession()
        try:
            ws = await self._open()
        except BaseException:
            await self._http.close()
            raise
        self._runner = asyncio.create_task(self._run(ws))
        await self._connected.wait()

    async def close(self) -> None:
        """Close the connection and stop reconnecting; waiting requests get ConnectionLost."""
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        elif self._runner is not None:  # between connections: stop trying
            self._runner.cancel()
        self._reconnect_allowed.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._in_flight.fail_all("the client was closed")
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def statistics(self) -> ClientStatistics:
        """Connections, resumes and full resends so far, and the offset applied."""
        return ClientStatistics(
            self._connections, self._resumes, self._full_resends, self.tx_offset
        )

    async def drop_connection(self) -> None:
        """Close the socket as a network failure would (a test hook): the client reconnects."""
        if self._ws is not None:
            await self._ws.close()

    def hold_reconnect(self) -> None:
        """Do not reconnect after the next drop until ``allow_reconnect`` (a test hook).

        Tests use it to make transactions happen while the client is away, so that the
        resume (or the full resend) has something to catch up on.
        """
        self._reconnect_allowed.clear()

    def allow_reconnect(self) -> None:
        """Undo ``hold_reconnect``."""
        self._reconnect_allowed.set()

    def save_identity(self) -> None:
        """Save this identity's token for this server where ``cosmictron-cli`` keeps it."""
        if self.identity is None or self.token is None:
            raise InvalidRequest("the client has no identity yet: connect first")
        settings = Settings.load()
        settings.identities[self.url] = SavedIdentity(self.identity.hex(), self.token)
        settings.save()

    # -- the connection -------------------------------------------------------------------

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        """Connect and read ``IdentityToken``; later connections use the token it gave."""
        assert self._http is not None
        ws, hello = await open_socket(self._http, self.url, self.database, self.token)
        self.identity = Identity.from_hex(hello["identity"])
        self.connection_id = ConnectionId.from_hex(hello["connection_id"])
        self.token = hello["token"]
        self._connections += 1
        return ws

    async def _run(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read until the connection drops, then reconnect and resume, until closed."""
        delay_s = RECONNECT_DELAY_S_MIN
        while True:
            if self._queries:
                # Subscribe before anything else is sent on this connection, so a request
                # made after a reconnect is answered after the resumed updates.
                resumed = await self._start_subscribe(ws, since_tx_offset=self.tx_offset)
                resumed.add_done_callback(self._report_resubscribe)
            self._ws = ws
            self._connected.set()
            await self._read(ws)
            self._connected.clear()
            self._ws = None
            self._in_flight.fail_all("the connection to the server was lost")
            await self._reconnect_allowed.wait()
            while not self._closed:
                try:
                    ws = await self._open()
                    break
                except (aiohttp.ClientError, OSError, TimeoutError, KeyError, ValueError) as exc:
                    logger.info("reconnecting to %s in %.2f s: %s", self.url, delay_s, exc)
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, RECONNECT_DELAY_S_MAX)
            if self._closed:
                return
            delay_s = RECONNECT_DELAY_S_MIN

    def _report_resubscribe(self, resumed: asyncio.Future[Reply]) -> None:
        if resumed.cancelled():
            return
        error = resumed.exception()
        if isinstance(error, SubscriptionError):
            self._fire_error(error)

    async def _send_subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        return await (await self._start_subscribe(ws, since_tx_offset=None))

    async def _start_subscribe(
        self, ws: aiohttp.ClientWebSocketResponse, since_tx_offset: int | None
    ) -> asyncio.Future[Reply]:
        """Send ``Subscribe`` for every query; the future resolves with its reply."""
        self._query_id += 1
        await self._in_flight.reserve()
        request_id, waiter = self._in_flight.open()
        body: dict[str, Any] = {
            "request_id": request_id,
            "query_id": self._query_id,
            "query_strings": self._queries,
        }
        if since_tx_offset is not None:
            body["since_tx_offset"] = since_tx_offset
        try:
            await ws.send_str(json.dumps({"Subscribe": body}))
        except ConnectionError:
            self._in_flight.fail(
                request_id, ConnectionLost(f"the connection to {self.url} was lost")
            )
        return waiter

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            ((kind, body),) = json.loads(frame.data).items()
            self._dispatch(kind, body)

    def _dispatch(self, kind: str, body: dict[str, Any]) -> None:
        if kind == "TransactionUpdate":
            events = self.cache.apply(body["tables"])
            self.tx_offset = int(body["tx_offset"])
            self._fire(events, self.tx_offset)
        elif kind == "SubscribeApplied":
            if body.get("resumed"):
                self._resumes += 1
            else:
                self._full_resends += 1
                events = self.cache.replace(body["tables"])
                self.tx_offset = int(body["tx_offset"])
                self._fire(events, self.tx_offset)
            self._resolve(body)
        elif kind == "SubscriptionError":
            error = SubscriptionError(str(body.get("error")))
            if body.get("request_id") is not None and body["request_id"] in self._in_flight:
                self._in_flight.fail(body["request_id"], error)
            else:
                self._fire_error(error)
        elif kind in ("ReducerResult", "OneOffQueryResult", "UnsubscribeApplied"):
            self._resolve(body)

    def _resolve(self, body: dict[str, Any]) -> None:
        self._in_flight.resolve(body.get("request_id"), body)

    def _require_connection(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is None or self._closed:
            raise ConnectionLost(f"not connected to {self.url}")
        return self._ws

    async def _request(self, kind: str, **fields: Any) -> Reply:
        if self._closed:
            raise ConnectionLost("the client was closed")
        await self._connected.wait()
        await self._in_flight.reserve()  # past the bound: wait for a reply to free a slot
        try:
            ws = self._require_connection()  # the connection may have dropped meanwhile
        except ConnectionLost:
            self._in_flight.release()
            raise
        request_id, waiter = self._in_flight.open()
        try:
            await ws.send_str(json.dumps({kind: {"request_id": request_id, **fields}}))
        except ConnectionError:
            self._in_flight.discard(request_id)
            raise ConnectionLost(f"the connection to {self.url} was lost") from None
        try:
            return await asyncio.wait_for(waiter, REPLY_TIMEOUT_S)
        finally:
            self._in_flight.discard(request_id)  # a timeout or cancel must free the slot too
