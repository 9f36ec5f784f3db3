"""The async client: one WebSocket connection to one database, kept alive.

``Client`` speaks ``v1.msgpack.cosmictron`` by default, ``v1.json.cosmictron`` with
``protocol="json"`` (docs/reference/websocket.md; the same messages either way). One
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

Module updates (a hot-swap, docs/design/hot-swap.md). The server ends a subscription that
reads a table the update changed (``SubscriptionError`` without ``request_id``), then
sends ``ModuleUpdated`` to every client. The client then *resyncs* (``_resync``): it
fetches the new schema, drops the cached rows of tables that vanished or changed shape
(``on_delete``), and tells ``on_module_updated``; if its subscription was ended, it
subscribes again to every query that still fits (a full send refills the cache in the
new shape) and tells ``on_subscription_ended`` about each query that no longer does.
While the subscription is ended, updates are ignored: the full send replaces the cache.
A reconnect that finds a different schema resyncs the same way.

This module is the connection itself: the socket, the reader task and its reconnect
loop, and the requests sent over it. Around it: ``connecting.py`` finds the server, token
and schema and makes a ``Client``; ``callbacks.py`` holds the ``on_*`` registry the
reader fires; ``transport.py`` opens the socket and holds the protocol's constants;
``in_flight.py`` is the bounded table of requests awaiting a reply;
``cache.py`` holds the rows. What is left is one piece: the reader, the reconnect loop
and the requests share the socket, the subscription's query set and the offset applied.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from cosmictron.client.ledger import LedgerVerificationError, LedgerVerifier
from cosmictron.client.replies import error_from_reply
from cosmictron.client.schema import DatabaseSchema
from cosmictron.client.settings import SavedIdentity, Settings
from cosmictron.client.transport import (
    RECONNECT_DELAY_S_MAX,
    RECONNECT_DELAY_S_MIN,
    REPLY_TIMEOUT_S,
    WIRE_FORMATS,
    WireFormat,
    fetch_schema,
    open_socket,
)
from cosmictron.errors import ConnectionLost, CosmictronError, InvalidRequest, SubscriptionError
from cosmictron.values import ConnectionId, Identity, Timestamp, json_form

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
    module_updates: int = 0
    """Module updates followed (schema refetched, cache reshaped, queries resubscribed)."""


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
        wire: WireFormat = WIRE_FORMATS["msgpack"],
        ledger_key: str | None = None,
    ) -> None:
        super().__init__()
        self.ledger: LedgerVerifier | None = (
            None if ledger_key is None else LedgerVerifier.for_key(ledger_key)
        )
        """With ``ledger_key``: checks every update's leaf and every checkpoint as they
        arrive (``client/ledger.py``); None otherwise."""
        self.ledger_failure: LedgerVerificationError | None = None
        """The first ledger check that failed (also given to ``on_error`` callbacks)."""
        self.wire = wire
        """The subprotocol spoken and its encoding (``transport.WireFormat``)."""
        self.url = url
        self.database = database
        self.schema = schema
        self.token = token
        self.identity: Identity | None = None
        self.connection_id: ConnectionId | None = None
        self.cache = ClientCache(schema.tables, row_types)
        self.tx_offset: int | None = None
        """The offset of the last transaction applied to the cache (None before any)."""
        self.stale = False
        """Cluster mode: whether the server node this client is connected to says its copy
        of the database is stale (NATS lost its quorum, or the node is cut off): the cache
        stays as of the offset applied, and no update comes until it is current again.
        ``on_staleness`` callbacks are told of each change. Always False on one server."""
        self.stale_since: Timestamp | None = None
        """While ``stale``: since when the node's copy may be behind (the server's clock)."""
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
        self._ended: SubscriptionError | None = None
        """Why the server ended the subscription (a module update), until resubscribed."""
        self._subscribing = asyncio.Lock()  # one change of the query set at a time
        self._resync_task: asyncio.Task[None] | None = None
        self._module_updates = 0
        self._probes = 0

    # -- reading the cache ----------------------------------------------------------------

    def table(self, name: str) -> TableCache:
        """The cached rows of table ``name`` (``iter``, ``count``, ``find``); for a
        subscribed query whose rows are not one table's (a column list, an aggregate, a
        compound), ``name`` is the query's text as subscribed."""
        return self.cache.table(name)

    @property
    def queries(self) -> tuple[str, ...]:
        """The queries subscribed to (after a module update: those that still fit)."""
        return tuple(self._queries)

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
        async with self._subscribing:
            return await self._subscribe_all(list(queries))

    async def _subscribe_all(self, queries: list[str]) -> int:
        """Replace the query set by ``queries`` (one ``query_id``); the offset applied."""
        await self._connected.wait()
        ws = self._require_connection()
        if self._queries and self._ended is None:
            unsubscribe = {"request_id": self._in_flight.next_id(), "query_id": self._query_id}
            await self._send(ws, {"Unsubscribe": unsubscribe})
        self._queries = list(queries)
        self.tx_offset = None  # a new query set: a full send, not a resume
        # ``_ended`` stays set until the reader applies this SubscribeApplied: until then
        # updates (a probe's, or none) must not touch the cache.
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
        form = self.wire.form
        arguments: Any = form(list(args))
        if kwargs:
            if args and info is None:
                raise InvalidRequest("give arguments by position or by name, not both")
            named = dict(zip((p.name for p in info.params), args, strict=False)) if info else {}
            arguments = form({**named, **kwargs})
        reply = await self._request("CallReducer", reducer=reducer, args=arguments)
        if reply.get("status") != "committed":
            raise error_from_reply(
                reply.get("error_code"),
                str(reply.get("error")),
                reducer,
                reply.get("error_traceback"),
                reply.get("retry_after_s"),
            )
        value = reply.get("return_value")
        if info is not None and info.returns is not None:
            return decode(value, info.returns)
        return json_form(value)  # untyped: its JSON form, whatever the protocol

    async def sql(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run one SQL statement and return its rows, as objects in their JSON forms.

        It is a ``OneOffQuery`` over the connection, so its reply follows every update
        sent before it; ``params`` fill the statement's ``:name`` placeholders (values in
        their JSON forms, as ``Database.sql`` takes them).

        Raises:
            SqlError: the statement cannot run. PermissionDenied: a private table.
        """
        fields: dict[str, Any] = {"query_string": query}
        if params:
            fields["params"] = self.wire.form(dict(params))
        reply = await self._request("OneOffQuery", **fields)
        if "error" in reply:
            raise error_from_reply(reply.get("error_code"), str(reply["error"]))
        # Rows in their JSON forms whatever the protocol (``_dispatch`` made them so).
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
        if self._resync_task is not None:
            self._resync_task.cancel()
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
            self._connections,
            self._resumes,
            self._full_resends,
            self.tx_offset,
            self._module_updates,
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
        ws, hello = await open_socket(self._http, self.url, self.database, self.token, self.wire)
        self.identity = Identity.from_hex(hello["identity"])
        self.connection_id = ConnectionId.from_hex(hello["connection_id"])
        self.token = hello["token"]
        self._connections += 1
        return ws

    async def _run(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read until the connection drops, then reconnect and resume, until closed."""
        delay_s = RECONNECT_DELAY_S_MIN
        first = True
        while True:
            if not first and await self._schema_changed():
                # The module changed while we were away: a resume would run the old
                # queries over new tables. Resync once the reader runs.
                self._ended = self._ended or SubscriptionError(
                    "the module was updated while the client was disconnected"
                )
                self._start_resync()
            elif self._queries and self._ended is None:
                # Subscribe before anything else is sent on this connection, so a request
                # made after a reconnect is answered after the resumed updates.
                resumed = await self._start_subscribe(ws, since_tx_offset=self.tx_offset)
                resumed.add_done_callback(self._report_resubscribe)
            if not first and self.ledger is not None:
                self.ledger.new_connection()
            first = False
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
            self._ended = error  # e.g. a module update raced the reconnect: resync
            self._start_resync()

    # -- module updates -------------------------------------------------------------------

    async def _schema_changed(self) -> bool:
        """Whether the database's schema differs from ours (asked after a reconnect)."""
        assert self._http is not None
        try:
            schema = await fetch_schema(self._http, self.url, self.database, self.token)
        except CosmictronError as exc:
            logger.warning("could not fetch the schema of %s: %s", self.database, exc)
            return False
        return schema != self.schema

    def _start_resync(self) -> None:
        """Follow a module update in a task of its own (it needs the reader running)."""
        if self._closed:
            return
        previous = self._resync_task
        self._resync_task = asyncio.create_task(self._resync(previous))

    async def _resync(self, previous: asyncio.Task[None] | None) -> None:
        """Refetch the schema, reshape the cache, resubscribe what still fits."""
        if previous is not None and not previous.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await previous
        try:
            async with self._subscribing:
                await self._connected.wait()
                assert self._http is not None
                schema = await fetch_schema(self._http, self.url, self.database, self.token)
                events, changed = self.cache.reshape(schema.tables)
                self.schema = schema
                self._module_updates += 1
                if events and self.tx_offset is not None:
                    self._fire(events, self.tx_offset)
                self._fire_module_updated(schema, changed)
                if self._ended is not None and self._queries:
                    await self._resubscribe_what_fits()
                elif self._ended is not None:
                    self._ended = None
        except ConnectionLost:
            # Dropped mid-way: the reconnect compares schemas and resyncs again.
            logger.info("the connection dropped while following a module update")
        except CosmictronError as exc:
            logger.warning("could not follow the module update of %s: %s", self.database, exc)

    async def _resubscribe_what_fits(self) -> None:
        """Subscribe again to the queries that fit the new module; tell of the others."""
        queries = list(self._queries)
        try:
            await self._subscribe_all(queries)
            return
        except SubscriptionError:
            pass  # at least one no longer fits: find which, one at a time
        fitting: list[str] = []
        for query in queries:
            error = await self._probe(query)
            if error is None:
                fitting.append(query)
            else:
                self._fire_ended(query, error)
        if fitting:
            await self._subscribe_all(fitting)
            return
        self._queries = []
        self._ended = None
        events = self.cache.replace([])
        if events and self.tx_offset is not None:
            self._fire(events, self.tx_offset)

    async def _probe(self, query: str) -> SubscriptionError | None:
        """Whether ``query`` can be subscribed to now: subscribe to it alone, then leave.

        Probes run only while the client's own subscription is ended, when every
        ``TransactionUpdate`` is ignored, so the probe's rows never reach the cache.
        """
        self._probes += 1
        query_id = f"probe-{self._probes}"
        try:
            await self._request("Subscribe", query_id=query_id, query_strings=[query])
        except SubscriptionError as exc:
            return exc
        await self._request("Unsubscribe", query_id=query_id)
        return None

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
        if self.ledger is not None:
            body["ledger"] = True
            if self.ledger.size:
                body["ledger_from_size"] = self.ledger.size
        try:
            await self._send(ws, {"Subscribe": body})
        except ConnectionError:
            self._in_flight.fail(
                request_id, ConnectionLost(f"the connection to {self.url} was lost")
            )
        return waiter

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, message: Any) -> None:
        data = self.wire.encode(message)
        if isinstance(data, bytes):
            await ws.send_bytes(data)
        else:
            await ws.send_str(data)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        expected = aiohttp.WSMsgType.BINARY if self.wire.binary else aiohttp.WSMsgType.TEXT
        decode = self.wire.decode
        async for frame in ws:
            if frame.type is not expected:
                break
            ((kind, body),) = decode(frame.data).items()
            self._dispatch(kind, body)

    def _dispatch(self, kind: str, body: dict[str, Any]) -> None:
        if self.wire.binary and "tables" in body:
            # The cache keys rows by their JSON text: msgpack's bytes become hex here.
            body["tables"] = json_form(body["tables"])
        if kind == "TransactionUpdate":
            if self._ended is not None:
                return  # the subscription ended: the resubscription's full send follows
            if self.ledger is not None:
                self._check_ledger(self.ledger.on_update, body)
            events = self.cache.apply(body["tables"])
            self.tx_offset = int(body["tx_offset"])
            self._fire(events, self.tx_offset)
        elif kind == "SubscribeApplied":
            if body.get("query_id") != self._query_id:
                pass  # a probe (``_probe``): its rows are not ours to keep
            elif body.get("resumed"):
                self._ended = None
                self._resumes += 1
            else:
                self._ended = None  # a live subscription again: apply its updates
                self._full_resends += 1
                events = self.cache.replace(body["tables"])
                self.tx_offset = int(body["tx_offset"])
                self._fire(events, self.tx_offset)
            if "stale" in body and body.get("query_id") == self._query_id:
                self._set_stale(bool(body["stale"]), int(body["tx_offset"]), None)
            self._resolve(body)
        elif kind == "SubscriptionError":
            error = SubscriptionError(str(body.get("error")))
            if body.get("request_id") is not None and body["request_id"] in self._in_flight:
                self._in_flight.fail(body["request_id"], error)
            else:
                if body.get("query_id") == self._query_id and self._queries:
                    self._ended = error  # the ModuleUpdated that follows resyncs
                self._fire_error(error)
        elif kind == "ModuleUpdated":
            self._start_resync()
        elif kind == "Staleness":
            since = body.get("since")
            self._set_stale(bool(body.get("stale")), int(body["tx_offset"]), since)
        elif kind == "LedgerCheckpoint":
            if self.ledger is not None:
                self._check_ledger(self.ledger.on_checkpoint, body)
        elif kind in ("ReducerResult", "OneOffQueryResult", "UnsubscribeApplied"):
            self._resolve(body)

    def _set_stale(self, stale: bool, tx_offset: int, since: str | None) -> None:
        """The server said whether the node's copy is stale (a ``Staleness`` message, or a
        ``SubscribeApplied``'s ``stale``); callbacks hear of a change only."""
        if stale and since is not None:
            self.stale_since = Timestamp.parse(since)
        elif not stale:
            self.stale_since = None
        if stale == self.stale:
            return
        self.stale = stale
        self._fire_staleness(stale, tx_offset, self.stale_since)

    def _check_ledger(self, check: Any, body: dict[str, Any]) -> None:
        if self.ledger_failure is not None:
            return  # the stream is not trusted any more; the first failure was reported
        try:
            check(body)
        except (LedgerVerificationError, KeyError, TypeError, ValueError) as exc:
            failure = (
                exc
                if isinstance(exc, LedgerVerificationError)
                else LedgerVerificationError("malformed", 0, f"a malformed ledger field: {exc}")
            )
            self.ledger_failure = failure
            self._fire_error(failure)

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
            await self._send(ws, {kind: {"request_id": request_id, **fields}})
        except ConnectionError:
            self._in_flight.discard(request_id)
            raise ConnectionLost(f"the connection to {self.url} was lost") from None
        try:
            return await asyncio.wait_for(waiter, REPLY_TIMEOUT_S)
        finally:
            self._in_flight.discard(request_id)  # a timeout or cancel must free the slot too
