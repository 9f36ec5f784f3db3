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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from cosmictron import names
from cosmictron.client.cache import ClientCache, RowEvent, RowFactory, TableCache
from cosmictron.client.jsonforms import decode
from cosmictron.client.replies import error_from_reply
from cosmictron.client.schema import DatabaseSchema
from cosmictron.client.settings import SavedIdentity, Settings, normalise_server_url
from cosmictron.errors import ConnectionLost, CosmictronError, InvalidRequest, SubscriptionError
from cosmictron.values import ConnectionId, Identity, json_form

logger = logging.getLogger(__name__)

PROTOCOL = "v1.json.cosmictron"
HEARTBEAT_S = 15.0
"""Ping interval, so a dead connection is noticed while no transaction arrives."""
RECONNECT_DELAY_S_MIN = 0.05
RECONNECT_DELAY_S_MAX = 2.0
"""Backoff between reconnect attempts: doubling from the minimum up to the maximum."""
REPLY_TIMEOUT_S = 60.0
"""How long ``call`` and ``sql`` wait for their reply before giving up."""

InsertCallback = Callable[[str, Any], None]
DeleteCallback = Callable[[str, Any], None]
UpdateCallback = Callable[[str, Any, Any], None]
AppliedCallback = Callable[[int], None]
ErrorCallback = Callable[[CosmictronError], None]


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


class Client:
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
        self._request_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._connected = asyncio.Event()
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self._inserts: list[InsertCallback] = []
        self._deletes: list[DeleteCallback] = []
        self._updates: list[UpdateCallback] = []
        self._applied: list[AppliedCallback] = []
        self._errors: list[ErrorCallback] = []

    # -- callbacks ------------------------------------------------------------------------

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

    # -- reading the cache ----------------------------------------------------------------

    def table(self, name: str) -> TableCache:
        """The cached rows of table ``name`` (``iter``, ``count``, ``find``)."""
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
            self._request_id += 1
            unsubscribe = {"request_id": self._request_id, "query_id": self._query_id}
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
            return await self._sql_over_http(query, params)
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
        self._fail_pending("the client was closed")
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
        scheme = "wss" if self.url.startswith("https:") else "ws"
        address = scheme + self.url.removeprefix("https").removeprefix("http")
        address += f"/v1/database/{self.database}/subscribe"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        ws = await self._http.ws_connect(
            address, protocols=(PROTOCOL,), headers=headers, heartbeat=HEARTBEAT_S
        )
        first = await ws.receive_json(timeout=REPLY_TIMEOUT_S)
        hello = first["IdentityToken"]
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
            self._fail_pending("the connection to the server was lost")
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

    def _report_resubscribe(self, resumed: asyncio.Future[dict[str, Any]]) -> None:
        if resumed.cancelled():
            return
        error = resumed.exception()
        if isinstance(error, SubscriptionError):
            for callback in self._errors:
                self._run_callback(callback, error)

    async def _send_subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        return await (await self._start_subscribe(ws, since_tx_offset=None))

    async def _start_subscribe(
        self, ws: aiohttp.ClientWebSocketResponse, since_tx_offset: int | None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send ``Subscribe`` for every query; the future resolves with its reply."""
        self._query_id += 1
        self._request_id += 1
        body: dict[str, Any] = {
            "request_id": self._request_id,
            "query_id": self._query_id,
            "query_strings": self._queries,
        }
        if since_tx_offset is not None:
            body["since_tx_offset"] = since_tx_offset
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._request_id] = waiter
        try:
            await ws.send_str(json.dumps({"Subscribe": body}))
        except ConnectionError:
            self._pending.pop(body["request_id"], None)
            waiter.set_exception(ConnectionLost(f"the connection to {self.url} was lost"))
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
            if body.get("request_id") is not None and body["request_id"] in self._pending:
                self._pending.pop(body["request_id"]).set_exception(error)
            else:
                for callback in self._errors:
                    self._run_callback(callback, error)
        elif kind in ("ReducerResult", "OneOffQueryResult", "UnsubscribeApplied"):
            self._resolve(body)

    def _resolve(self, body: dict[str, Any]) -> None:
        waiter = self._pending.pop(body.get("request_id"), None)  # type: ignore[arg-type]
        if waiter is not None and not waiter.done():
            waiter.set_result(body)

    def _fire(self, events: Sequence[RowEvent], tx_offset: int) -> None:
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

    def _run_callback(self, callback: Callable[..., None], *args: Any) -> None:
        # A user's callback is the edge here: its bug must not stop the client.
        try:
            callback(*args)
        except Exception:
            logger.exception("a Cosmictron client callback raised")

    def _require_connection(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is None or self._closed:
            raise ConnectionLost(f"not connected to {self.url}")
        return self._ws

    async def _request(self, kind: str, **fields: Any) -> dict[str, Any]:
        if self._closed:
            raise ConnectionLost("the client was closed")
        await self._connected.wait()
        ws = self._require_connection()
        self._request_id += 1
        request_id = self._request_id
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = waiter
        try:
            await ws.send_str(json.dumps({kind: {"request_id": request_id, **fields}}))
        except ConnectionError:
            self._pending.pop(request_id, None)
            raise ConnectionLost(f"the connection to {self.url} was lost") from None
        return await asyncio.wait_for(waiter, REPLY_TIMEOUT_S)

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for waiter in pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionLost(f"{reason}; the request may not have run"))
                waiter.add_done_callback(_retrieved)  # nobody may be waiting any more

    async def _sql_over_http(self, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        assert self._http is not None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = {"query": query, "params": json_form(dict(params))}
        address = f"{self.url}/v1/database/{self.database}/sql"
        try:
            async with self._http.post(address, json=body, headers=headers) as response:
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionLost(f"the SQL request to {self.url} failed: {exc}") from None
        if isinstance(document, dict) and isinstance(document.get("error"), dict):
            error = document["error"]
            raise error_from_reply(error.get("code"), str(error.get("message")))
        return list(document["rows"])


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def fetch_schema(http: aiohttp.ClientSession, url: str, database: str) -> DatabaseSchema:
    """The database's schema, from ``GET /v1/database/{name}/schema``.

    Raises:
        NotFound: no such database. ConnectionLost: no server answered.
    """
    try:
        async with http.get(f"{url}/v1/database/{database}/schema") as response:
            document = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionLost(f"cannot connect to {url}: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
        raise error_from_reply(error.get("code"), str(error.get("message")))
    return DatabaseSchema.from_json(document)


def resolve_server(url: str | None) -> str:
    """``url``, else ``$COSMICTRON_SERVER``, else the saved default, else the local default."""
    chosen = Settings.load().server_url(url, os.environ.get("COSMICTRON_SERVER"))
    return normalise_server_url(chosen)


def saved_token(url: str) -> str | None:
    """The token ``cosmictron-cli`` (or ``save_identity``) saved for the server ``url``."""
    saved = Settings.load().identities.get(url)
    return saved.token if saved else None


async def connect(
    database: str,
    *queries: str,
    server: str | None = None,
    token: str | None = None,
    use_saved_token: bool = True,
    row_types: Mapping[str, RowFactory] | None = None,
) -> Client:
    """Connect to ``database`` and, given ``queries``, subscribe to them.

    Args:
        database: the database's name.
        queries: SQL queries to subscribe to (``SELECT * FROM message``); more later with
            ``Client.subscribe``.
        server: the server URL (default: ``$COSMICTRON_SERVER``, the CLI's saved default,
            ``http://127.0.0.1:3000``).
        token: connect as this token's identity.
        use_saved_token: without ``token``, use the one saved for this server (by
            ``cosmictron-cli identity new`` or ``Client.save_identity``); if there is none,
            or this is False, the server makes a new identity (``client.token``).
        row_types: per table, a class (or function) the cache builds rows with, called
            with the columns as keywords: the dataclasses ``cosmictron-cli generate``
            writes. By default rows are ``Row`` objects.

    Raises:
        InvalidRequest: a name no database could have (``cosmictron.names``).
        NotFound: no such database. ConnectionLost: no server answered.
        SubscriptionError: a query is bad.
    """
    names.check_database(database)  # InvalidRequest before anything is sent
    url = resolve_server(server)
    if token is None and use_saved_token:
        token = saved_token(url)
    async with aiohttp.ClientSession() as http:
        schema = await fetch_schema(http, url, database)
    client = Client(url, database, schema, token, row_types)
    try:
        await client.start()
    except aiohttp.WSServerHandshakeError as exc:
        raise error_from_reply(_code_for_status(exc.status), exc.message) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionLost(f"cannot connect to {url}: {exc}") from None
    if queries:
        try:
            await client.subscribe(*queries)
        except BaseException:
            await client.close()
            raise
    return client


def _code_for_status(status: int) -> str:
    return {401: "unauthenticated", 403: "permission_denied", 404: "not_found"}.get(
        status, "invalid_request"
    )
