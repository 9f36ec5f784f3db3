"""One WebSocket client of a database: ``WebSocketClient`` (docs/reference/websocket.md).

Made by the route (``server/websocket.py``) once the upgrade succeeded, it serves one
client until either side closes: it handles the client's requests one at a time, in the
order sent, and owns one bounded outgoing queue that a single sender task drains. Every
message waits in the queue until its transaction is durable (confirmed reads,
``feed.DurableWatermark``); a client whose queue passes ``client_queue_messages_max``
messages or ``client_queue_bytes_max`` bytes is disconnected with close code 1008, so
nothing the database does ever waits on a client and a client that asks for large
results without reading them cannot grow the server. Messages are encoded to JSON text
when queued, so their size is known. ``client_disconnected`` runs (in the route) when
the client ends.

A client that sends nothing for ``websocket_ping_interval_s`` is pinged; one that then
sends nothing, not even the pong, for ``websocket_pong_timeout_s`` is presumed dead and
closed with code 4408 (``WebSocketClient.watch_liveness``; any bytes count, as measured
on its ``TcpConnection`` (``server/connections.py``) before aiohttp parses them, so a
busy client never mistakes a queued pong for silence).

Not the TCP connection it runs on (``TcpConnection``), nor the SDK's ``Client``. Over
400 lines because it is one piece: the queue, the liveness watch and the request loop
share one closed flag and one ``drop``, and each request's reply goes through the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from functools import partial
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from cosmictron import bounded_json, limits
from cosmictron.errors import (
    CosmictronError,
    NotFinite,
    NotFound,
    QueryCancelled,
    QueryTooCostly,
)
from cosmictron.query.budget import QueryBudget
from cosmictron.server.connection_deadlines import TcpConnection
from cosmictron.server.connections import ConnectionLimits
from cosmictron.server.feed import DatabaseFeed
from cosmictron.server.protocol import (
    CallReducer,
    ClientMessage,
    OneOffQuery,
    ProtocolError,
    QueryId,
    RequestId,
    Subscribe,
    Unsubscribe,
    parse,
    query_error,
    reducer_result,
    reply_for_error,
    subscription_error,
)
from cosmictron.server.replies import small
from cosmictron.server.routes import check_finite_params, reducer_arguments, submit_call
from cosmictron.server.throttle import Throttle
from cosmictron.server.wire import row_to_json
from cosmictron.subscription import Subscription
from cosmictron.values import ConnectionId, Identity, json_form

logger = logging.getLogger(__name__)

CLOSE_NO_PONG = 4408
"""Close code of a client that answered no ping in time (a private-use code: RFC 6455
has none for a timeout; 408 as in HTTP's Request Timeout)."""

CLOSE_TIMEOUT_S = 10.0
"""How long a closing client may take to read what is queued and answer the close."""


class WebSocketClient:
    """One connected client: its subscriptions and its bounded outgoing queue."""

    # Set by ``limit_as`` (server/throttle.py): how this client is rate-limited and the
    # budget its queries run under.
    anonymous = False
    rate_key = ""
    throttle: Throttle | None = None
    budget: QueryBudget | None = None

    def __init__(
        self,
        ws: web.WebSocketResponse,
        feed: DatabaseFeed,
        identity: Identity,
        connection_id: ConnectionId,
        queue_max: int,
        queue_bytes_max: int = limits.client_queue_bytes_max,
    ) -> None:
        self.ws = ws
        self.feed = feed
        self.hosted = feed.hosted
        self.identity = identity
        self.connection_id = connection_id
        self.queue_max = queue_max
        self.queue_bytes_max = queue_bytes_max
        self.queued_bytes = 0
        """Bytes of JSON text in ``_outbox`` (ASCII: ``json.dumps`` escapes the rest)."""
        self.closed = False
        self.subscriptions: dict[QueryId, Subscription] = {}
        self._outbox: deque[tuple[int, str]] = deque()
        self._ready = asyncio.Event()
        self._sender = asyncio.create_task(self._send_all())
        self._closer: asyncio.Task[None] | None = None
        self._calls: deque[tuple[RequestId, asyncio.Future[Any]]] = deque()
        self._finisher: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._liveness: asyncio.Task[None] | None = None

    @property
    def queue_depth(self) -> int:
        """Messages waiting to be sent (for ``/metrics``)."""
        return len(self._outbox)

    # -- outgoing -------------------------------------------------------------------------

    def deliver(self, message: dict[str, Any] | str, offset: int) -> None:
        """Queue ``message``, to be sent once ``offset`` is durable (event loop only)."""
        if self.closed:
            return
        if len(self._outbox) >= self.queue_max:
            self.drop(
                WSCloseCode.POLICY_VIOLATION,
                f"the client fell behind: more than {self.queue_max} messages queued",
            )
            return
        # A str is JSON already, made once for every client it goes to (feed.py), or
        # encoded off the loop because it may be large.
        try:
            text = message if isinstance(message, str) else bounded_json.dumps(message)
        except NotFinite as exc:  # no strict client could read it: never sent bare
            self.drop(WSCloseCode.INTERNAL_ERROR, str(exc))
            return
        if self.queued_bytes + len(text) > self.queue_bytes_max:
            self.drop(
                WSCloseCode.POLICY_VIOLATION,
                f"the client fell behind: more than {self.queue_bytes_max} bytes queued",
            )
            return
        self.queued_bytes += len(text)
        self._outbox.append((offset, text))
        self._ready.set()

    async def _send_all(self) -> None:
        watermark = self.feed.watermark
        try:
            while True:
                if not self._outbox:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                offset, message = self._outbox[0]
                if not watermark.reached(offset):
                    await watermark.wait_durable(offset)
                self._outbox.popleft()
                self.queued_bytes -= len(message)
                await self.ws.send_str(message)
        except ConnectionError:
            self.closed = True
        except CosmictronError as exc:  # the database can no longer make anything durable
            self.drop(WSCloseCode.INTERNAL_ERROR, f"the database failed: {exc}")

    def drop(self, code: int, reason: str) -> None:
        """Stop sending and close the connection with ``code`` and ``reason``."""
        if self.closed:
            return
        self.closed = True
        self._outbox.clear()
        self.queued_bytes = 0
        self._sender.cancel()
        self._closer = asyncio.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            message = reason.encode()[:123]  # a close frame's reason is at most 123 bytes
            await asyncio.wait_for(self.ws.close(code=code, message=message), CLOSE_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            pass  # aiohttp closed the transport on a timeout; nothing else to do

    async def wait_closed(self) -> None:
        if self._closer is not None:
            await self._closer

    # -- liveness (of the TcpConnection, server/connections.py) -----------------------

    def watch_liveness(self, connection: TcpConnection, settings: ConnectionLimits) -> None:
        """Ping the client after ``websocket_ping_interval_s`` of silence and close it
        (4408) if it then stays silent for ``websocket_pong_timeout_s``."""
        self._liveness = asyncio.create_task(self._watch(connection, settings))

    async def _watch(self, connection: TcpConnection, settings: ConnectionLimits) -> None:
        loop = asyncio.get_running_loop()
        interval_s = settings.websocket_ping_interval_s
        timeout_s = settings.websocket_pong_timeout_s
        while not self.closed:
            silent_s = loop.time() - connection.last_received
            if silent_s < interval_s:
                await asyncio.sleep(interval_s - silent_s)
                continue
            pinged_at = loop.time()
            try:
                # A client that reads nothing fills its window: the ping may never go out.
                await asyncio.wait_for(self.ws.ping(), timeout_s)
                await asyncio.sleep(max(0.0, pinged_at + timeout_s - loop.time()))
            except (TimeoutError, ConnectionError):
                pass
            if connection.last_received < pinged_at:
                self.drop(
                    CLOSE_NO_PONG,
                    f"no pong within {timeout_s:g} s of a ping after {interval_s:g} s of "
                    "silence (limits.websocket_pong_timeout_s)",
                )
                return

    # -- incoming -------------------------------------------------------------------------

    def limit_as(self, anonymous: bool, rate_key: str, throttle: Throttle) -> None:
        """Rate-limit this client's requests under ``rate_key`` (its identity, or its
        address without a token) and run its queries under the matching budget."""
        self.anonymous = anonymous
        self.rate_key = rate_key
        self.throttle = throttle
        self.budget = throttle.settings.query_budget(anonymous)

    def take_rate(self, kind: str) -> None:
        """Spend one request of ``kind``; ``RateLimited`` past the client's rate."""
        if self.throttle is not None:
            self.throttle.take(kind, self.anonymous, self.rate_key)

    async def run(self) -> None:
        """Serve requests in order until the client or the server closes."""
        try:
            async for frame in self.ws:
                if frame.type is WSMsgType.TEXT:
                    await self.handle(frame.data)
                elif frame.type is WSMsgType.BINARY:
                    reason = "binary frames are not accepted: send JSON text frames"
                    self.drop(WSCloseCode.UNSUPPORTED_DATA, reason)
                    break
        except Exception:
            logger.exception("WebSocket session of %s failed", self.identity.hex())
            self.drop(WSCloseCode.INTERNAL_ERROR, "internal error; see the server log")

    async def handle(self, text: str) -> None:
        large = len(text) > limits.json_inline_bytes_max
        try:
            # A large message is decoded (depth scan and JSON) on a worker thread.
            request: ClientMessage = await asyncio.to_thread(parse, text) if large else parse(text)
        except ProtocolError as exc:
            await self._settle_calls()
            self.deliver(reply_for_error(exc), 0)
            return
        if isinstance(request, CallReducer):
            await self._call(request, large)
            return
        # Any other request sees every earlier call finished: requests keep their order.
        await self._settle_calls()
        if isinstance(request, Subscribe):
            await self._subscribe(request)
        elif isinstance(request, Unsubscribe):
            await self._unsubscribe(request)
        else:
            await self._query(request)

    async def _subscribe(self, request: Subscribe) -> None:
        query_id = request.query_id
        problem = None
        if query_id in self.subscriptions:
            problem = f"query_id {query_id!r} is already subscribed; unsubscribe it first"
        elif len(self.subscriptions) >= limits.client_subscriptions_max:
            problem = f"a client may hold at most {limits.client_subscriptions_max} subscriptions"
        if problem is not None:
            self.deliver(subscription_error(request.request_id, query_id, problem), 0)
            return
        try:
            self.take_rate("subscriptions")
        except CosmictronError as exc:
            self.deliver(subscription_error(request.request_id, query_id, str(exc), exc.code), 0)
            return
        subscribe = partial(
            self.feed.subscribe,
            self,
            request.request_id,
            query_id,
            request.query_strings,
            request.since_tx_offset,
            self.budget,
        )
        try:
            subscription = await self.hosted.run(subscribe)
        except CosmictronError as exc:
            code = exc.code if isinstance(exc, QueryCancelled | QueryTooCostly) else None
            self.deliver(subscription_error(request.request_id, query_id, str(exc), code), 0)
            return
        self.subscriptions[query_id] = subscription

    async def _unsubscribe(self, request: Unsubscribe) -> None:
        subscription = self.subscriptions.pop(request.query_id, None)
        if subscription is None:
            problem = f"no subscription has query_id {request.query_id!r}"
            self.deliver(subscription_error(request.request_id, request.query_id, problem), 0)
            return
        await self.hosted.run(subscription.unsubscribe)
        applied = {"request_id": request.request_id, "query_id": request.query_id}
        self.deliver({"UnsubscribeApplied": applied}, 0)

    async def _call(self, request: CallReducer, large: bool = False) -> None:
        """Submit the call and go on reading: a client may pipeline calls, and calls in
        flight together share an fsync (``calls.CallWorker``). Results are delivered in
        the order the calls were sent, by ``_finish_calls``."""
        db = self.hosted.db
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any]
        try:
            self.take_rate("calls")
            binding = db.module.reducers.get(request.reducer) or db.module.procedures.get(
                request.reducer
            )
            if binding is None:
                known = ", ".join(sorted([*db.module.reducers, *db.module.procedures])) or "none"
                raise NotFound(f"no reducer named {request.reducer!r} (reducers: {known})")
            if large:  # converting large arguments is slow too: off the loop
                args, kwargs = await asyncio.to_thread(
                    reducer_arguments, binding.schema, request.args
                )
            else:
                args, kwargs = reducer_arguments(binding.schema, request.args)
            future = submit_call(
                self.hosted, request.reducer, args, kwargs, self.identity, self.connection_id
            )
        except CosmictronError as exc:
            future = loop.create_future()
            future.set_exception(exc)
        self._calls.append((request.request_id, future))
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.create_task(self._finish_calls())
        if len(self._calls) > limits.client_calls_in_flight_max:
            await asyncio.shield(self._calls[0][1])  # stop reading until the oldest is done

    async def _finish_calls(self) -> None:
        while self._calls:
            request_id, future = self._calls[0]
            try:
                outcome = await asyncio.shield(future)
            except CosmictronError as exc:
                self.deliver(reducer_result(request_id, error=str(exc), error_code=exc.code), 0)
            else:
                # The transaction's own TransactionUpdate was queued (under the writer
                # lock) before the call was resolved, so it precedes this result; a
                # large return value is encoded off the loop meanwhile, and since this
                # task delivers results one by one, their order holds.
                def result(outcome: Any = outcome, request_id: RequestId = request_id) -> Any:
                    value = json_form(outcome.return_value)
                    return reducer_result(
                        request_id, return_value=value, tx_offset=outcome.tx_offset
                    )

                if small(outcome.return_value):
                    self.deliver(result(), outcome.tx_offset)
                else:
                    try:
                        text = await asyncio.to_thread(lambda: bounded_json.dumps(result()))
                    except CosmictronError as exc:
                        text = bounded_json.dumps(
                            reducer_result(request_id, error=str(exc), error_code=exc.code)
                        )
                    self.deliver(text, outcome.tx_offset)
            self._calls.popleft()
        self._settled.set()

    async def _settle_calls(self) -> None:
        """Wait until every call sent so far has its result queued."""
        if self._calls:
            self._settled.clear()
            await self._settled.wait()

    async def _query(self, request: OneOffQuery) -> None:
        try:
            self.take_rate("queries")
            text, offset = await self.hosted.run(self._run_query, request)
        except CosmictronError as exc:
            self.deliver(query_error(request.request_id, str(exc), exc.code), 0)
            return
        self.deliver(text, offset)

    def _run_query(self, request: OneOffQuery) -> tuple[str, int]:
        """Run a one-off query and encode its reply, on a database thread (a result of
        many rows takes long to convert and encode; the event loop must not)."""
        db = self.hosted.db
        if request.params:
            check_finite_params(request.params)
        result = db.sql(
            request.query_string, request.params or None, sender=self.identity, budget=self.budget
        )
        # A read sees every transaction up to now: it waits for them to be durable.
        offset = result.tx_offset if result.tx_offset is not None else db.tx_offset
        columns = list(result.columns)
        rows = [row_to_json(row, columns) for row in result.rows]
        table = {"table_name": "result", "columns": columns, "rows": rows}
        reply = {"OneOffQueryResult": {"request_id": request.request_id, "tables": [table]}}
        return bounded_json.dumps(reply), offset

    async def finish(self) -> None:
        """After the connection ends: stop sending, end every subscription."""
        self.closed = True
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
        if self._liveness is not None:
            self._liveness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._liveness
        await self.wait_closed()
        for subscription in self.subscriptions.values():
            with contextlib.suppress(RuntimeError):  # the database's threads have stopped
                await self.hosted.run(subscription.unsubscribe)
        self.subscriptions.clear()
