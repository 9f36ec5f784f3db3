"""One WebSocket client of a database: ``WebSocketClient`` (docs/reference/websocket.md).

Made by the route (``server/websocket.py``) once the upgrade succeeded, it serves one
client until either side closes: it handles the client's requests one at a time, in the
order sent, and owns one bounded outgoing queue that a single sender task drains. Every
message waits in the queue until its transaction is durable (confirmed reads,
``feed.DurableWatermark``); a client whose queue passes ``client_queue_messages_max``
messages or ``client_queue_bytes_max`` bytes is disconnected with close code 1008, so
nothing the database does ever waits on a client and a client that asks for large
results without reading them cannot grow the server. Messages are encoded (JSON text or
msgpack bytes: the connection's ``Codec``, chosen in the handshake) when queued, so their
size is known. ``client_disconnected`` runs (in the route) when
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
import math
from collections import deque
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from cosmictron import limits
from cosmictron.errors import (
    ClusterUnavailable,
    CosmictronError,
    InternalError,
    InvalidRequest,
    NotFinite,
    QueryCancelled,
    QueryTooCostly,
    error_document,
)
from cosmictron.host import CallOutcome
from cosmictron.query.budget import QueryBudget
from cosmictron.server.connection_deadlines import TcpConnection
from cosmictron.server.connections import ConnectionLimits
from cosmictron.server.feed import DatabaseFeed
from cosmictron.server.frames_out import FrameWriter
from cosmictron.server.protocol import (
    JSON,
    CallReducer,
    ClientMessage,
    Codec,
    OneOffQuery,
    ProtocolError,
    QueryId,
    RequestId,
    Subscribe,
    Unsubscribe,
    call_fields,
    parse,
    parse_message,
    query_error,
    reducer_result,
    reply_for_error,
    subscription_error,
)
from cosmictron.server.replies import small
from cosmictron.server.routes import (
    argument_converter,
    check_finite_params,
    converter_of,
    submit_call,
)
from cosmictron.server.throttle import Allowance, Throttle
from cosmictron.server.wire import row_to_json
from cosmictron.subscription import Subscription
from cosmictron.values import ConnectionId, Identity

if TYPE_CHECKING:
    from cosmictron.server.forwarded_calls import CallForwarder

logger = logging.getLogger(__name__)

CLOSE_NO_PONG = 4408
"""Close code of a client that answered no ping in time (a private-use code: RFC 6455
has none for a timeout; 408 as in HTTP's Request Timeout)."""

CLOSE_TIMEOUT_S = 10.0
"""How long a closing client may take to read what is queued and answer the close."""


class _PendingCall:
    """A call sent and not yet answered: filled in when its result arrives."""

    __slots__ = ("done", "error", "outcome", "request_id", "sent", "seq")

    def __init__(self, request_id: RequestId, seq: int = 0) -> None:
        self.request_id = request_id
        self.seq = seq  # its place among the gated reducer calls; 0: not gated; -1: procedure
        self.done = False
        self.sent = False  # its result was written off the loop (``_reply_now``)
        self.outcome: CallOutcome | None = None
        self.error: BaseException | None = None


class WebSocketClient:
    """One connected client: its subscriptions and its bounded outgoing queue."""

    # Set by ``limit_as`` (server/throttle.py): how this client is rate-limited and the
    # budget its queries run under.
    anonymous = False
    rate_key = ""
    throttle: Throttle | None = None
    allowances: Mapping[str, Allowance] = MappingProxyType({})
    """The caller's buckets of each kind, held (``Throttle.allowance``)."""
    budget: QueryBudget | None = None
    forwarder: CallForwarder | None = None
    """Set in cluster mode (server/websocket.py): sends calls to the leader on a follower."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        feed: DatabaseFeed,
        identity: Identity,
        connection_id: ConnectionId,
        queue_max: int,
        queue_bytes_max: int = limits.client_queue_bytes_max,
        codec: Codec = JSON,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.ws = ws
        self.codec = codec
        self.frames = FrameWriter(ws, transport, codec.binary)
        """Writes ready messages in one go (else the sender task sends via aiohttp)."""
        self.feed = feed
        self.hosted = feed.hosted
        self.identity = identity
        self.connection_id = connection_id
        self.queue_max = queue_max
        self.queue_bytes_max = queue_bytes_max
        self.queued_bytes = 0
        """Bytes in ``_outbox`` (JSON text is ASCII: ``json.dumps`` escapes the rest)."""
        self.closed = False
        self.ledger = False
        """Opted in to leaf hashes and ``LedgerCheckpoint``s (``ledger_feed.py``)."""
        self.ledger_from_size: int | None = None
        self.subscriptions: dict[QueryId, Subscription] = {}
        self._forwards: set[asyncio.Task[CallOutcome]] = set()
        # (offset, data, gate): data is a Future while a large reply is being encoded
        # (``_reserve``); ``gate`` holds the message until the result of every reducer call
        # sent before it was queued has its place (``_place``): frames in commit order.
        self._outbox: deque[tuple[int, str | bytes | asyncio.Future[str | bytes], int]] = deque()
        self._submitted = 0  # reducer calls sent and gated (their ``seq``)
        self._placed = 0  # the last gated call whose result has its place in the queue
        self._procedures = 0  # procedures in flight: calls behind them are not gated
        self._ready = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._flush_soon = False  # a ``_flush`` is scheduled for the end of this loop turn
        self._awaiting_durable = False  # the watermark will call ``_durable``
        self._after_batch = self._flush  # made once: the call thread's hand-offs key on it
        self._sender = asyncio.create_task(self._send_all())
        self._closer: asyncio.Task[None] | None = None
        self._calls: deque[_PendingCall] = deque()
        self._encoding = 0  # large results being encoded off the loop (each has its place)
        self._progress: asyncio.Future[None] | None = None  # woken as calls are answered
        self._liveness: asyncio.Task[None] | None = None

    @property
    def queue_depth(self) -> int:
        """Messages waiting to be sent (for ``/metrics``)."""
        return len(self._outbox)

    # -- outgoing -------------------------------------------------------------------------

    def deliver(self, message: dict[str, Any] | str | bytes, offset: int) -> None:
        """Queue ``message``, to be sent once ``offset`` is durable (event loop only)."""
        text = self._admit(message)
        if text is None:
            return
        self.queued_bytes += len(text)
        self._outbox.append((offset, text, self._submitted))
        self._wake()

    def _queue_result(self, seq: int, offset: int, message: dict[str, Any] | str | bytes) -> None:
        text = self._admit(message)
        if text is not None:
            self.queued_bytes += len(text)
            self._place(seq, offset, text)

    def deliver_ahead(self, message: dict[str, Any]) -> None:
        """Queue ``message`` ahead of every queued message whose transaction is not
        durable yet (event loop only). Cluster mode: with the quorum lost, such a message
        waits as long as the outage, and what says so (``Staleness``, a call's
        ``cluster_unavailable``) must not wait behind it."""
        self._queue_ahead(0, message)
        self._wake()

    def _queue_ahead(self, seq: int, message: dict[str, Any]) -> None:
        text = self._admit(message)
        if text is None:
            return
        self.queued_bytes += len(text)
        durable = self.feed.watermark.durable_offset
        outbox = self._outbox
        at = next((k for k, entry in enumerate(outbox) if entry[0] > durable), len(outbox))
        outbox.insert(at, (0, text, 0))
        if seq > 0:
            self._placed = seq

    def _admit(self, message: dict[str, Any] | str | bytes) -> str | bytes | None:
        """``message`` encoded, or None (the client is closed, or is dropped now for
        falling behind or for a message no strict client could read)."""
        if self.closed:
            return None
        if len(self._outbox) >= self.queue_max:
            self.drop(
                WSCloseCode.POLICY_VIOLATION,
                f"the client fell behind: more than {self.queue_max} messages queued",
            )
            return None
        # A str (bytes) is encoded already, made once for every client of this codec it
        # goes to (feed.py), or encoded off the loop because it may be large.
        try:
            text = message if isinstance(message, str | bytes) else self.codec.encode(message)
        except NotFinite as exc:  # no strict client could read it: never sent bare
            self.drop(WSCloseCode.INTERNAL_ERROR, str(exc))
            return None
        if self.queued_bytes + len(text) > self.queue_bytes_max:
            self.drop(
                WSCloseCode.POLICY_VIOLATION,
                f"the client fell behind: more than {self.queue_bytes_max} bytes queued",
            )
            return None
        return text

    def _place(
        self, seq: int, offset: int, data: str | bytes | asyncio.Future[str | bytes]
    ) -> None:
        """Queue a call's result right after its own transaction's update.

        Calls are acknowledged in batches after their transactions are durable
        (``calls.CallWorker``), so by then updates of later transactions may be queued;
        they are held (their gate is this call's ``seq`` or later) and the result goes
        before those of them with a later offset. A call that changed nothing (offset 0)
        or was not gated goes last."""
        outbox = self._outbox
        at = len(outbox)
        if seq > 0 and offset:
            while at and outbox[at - 1][2] >= seq and outbox[at - 1][0] > offset:
                at -= 1
        outbox.insert(at, (offset, data, 0))
        if seq > 0:
            self._placed = seq

    def _reserve(self, seq: int, offset: int) -> asyncio.Future[str | bytes] | None:
        """Hold the result's place in the queue while it is encoded off the loop, so
        nothing queued meanwhile overtakes it. Its bytes count once ``_fill`` gives them;
        None when closed."""
        if self.closed:
            return None
        if len(self._outbox) >= self.queue_max:
            self.drop(
                WSCloseCode.POLICY_VIOLATION,
                f"the client fell behind: more than {self.queue_max} messages queued",
            )
            return None
        slot: asyncio.Future[str | bytes] = asyncio.get_running_loop().create_future()
        self._place(seq, offset, slot)
        return slot

    def _fill(self, slot: asyncio.Future[str | bytes], data: str | bytes) -> None:
        if self.closed or slot.done():
            return
        if self.queued_bytes + len(data) > self.queue_bytes_max:
            self.drop(
                WSCloseCode.POLICY_VIOLATION,
                f"the client fell behind: more than {self.queue_bytes_max} bytes queued",
            )
            return
        self.queued_bytes += len(data)
        slot.set_result(data)
        self._wake()

    def _wake(self) -> None:
        """Something was queued: write what may go at the end of this loop turn (one
        write for all that was queued in it)."""
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write, in one go, every message at the head of the queue that may go now: its
        transaction durable, no result still to be placed before it, its encoding done.

        What waits is written by a later ``_flush``: the watermark calls it once the head
        is durable (``_await_durable``), placing a result or finishing an encoding wakes
        it. Only what must go through aiohttp (``FrameWriter.usable`` is False) is left
        to the sender task."""
        self._flush_soon = False
        outbox = self._outbox
        if not outbox or self.closed:
            return
        if not self.frames.usable:
            self._ready.set()
            return
        watermark = self.feed.watermark
        durable = watermark.known  # a result's offset is at or below it: no need to ask
        placed = self._placed
        ready: list[str | bytes] = []
        frames = self.frames
        frames.busy = True  # no ``write_now`` between taking messages and writing them
        try:
            while outbox:
                offset, message, gate = outbox[0]
                if gate > placed:
                    break
                if offset > durable and offset > (durable := watermark.durable_offset):
                    if not self._awaiting_durable:
                        self._awaiting_durable = True
                        watermark.when_durable(offset, self._durable)
                    break
                if isinstance(message, asyncio.Future):
                    if not message.done():
                        break
                    message = message.result()
                outbox.popleft()
                self.queued_bytes -= len(message)
                ready.append(message)
            if ready:
                frames.write(ready)
        finally:
            frames.busy = False

    def _durable(self, error: BaseException | None) -> None:
        """The watermark's answer for the head of the queue: write what may go now."""
        self._awaiting_durable = False
        if isinstance(error, CosmictronError):  # nothing can be made durable any more
            self.drop(WSCloseCode.INTERNAL_ERROR, f"the database failed: {error}")
        elif error is None:
            self._flush()

    async def _send_all(self) -> None:
        """Send what ``_flush`` cannot write directly (``FrameWriter.usable`` is False:
        compression, a client slow to read, a closing connection): wait for the head's
        durability, place or encoding, then send it through aiohttp, one at a time."""
        watermark = self.feed.watermark
        send: Any = self.ws.send_bytes if self.codec.binary else self.ws.send_str
        outbox = self._outbox
        frames = self.frames
        try:
            while True:
                if not outbox or frames.usable:
                    self._flush()  # writable again (say, after a drain): write what may go
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                offset, message, gate = outbox[0]
                if gate > self._placed:  # a result may still go before it
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                if not watermark.reached(offset):
                    await watermark.wait_durable(offset)
                    continue
                if isinstance(message, asyncio.Future):
                    if not message.done():
                        await message  # a large reply still being encoded
                        continue
                    message = message.result()
                frames.busy = True  # no ``write_now`` until this one is written
                try:
                    outbox.popleft()
                    self.queued_bytes -= len(message)
                    await send(message)
                finally:
                    frames.busy = False
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
        self.allowances = {
            kind: throttle.allowance(kind, anonymous, rate_key)
            for kind in ("calls", "queries", "subscriptions")
        }

    def take_rate(self, kind: str) -> None:
        """Spend one request of ``kind``; ``RateLimited`` past the client's rate."""
        allowance = self.allowances.get(kind)
        if allowance is not None:
            allowance.take()

    async def run(self) -> None:
        """Serve requests in order until the client or the server closes."""
        try:
            codec = self.codec
            expected = WSMsgType.BINARY if codec.binary else WSMsgType.TEXT
            inline_max = limits.json_inline_bytes_max
            in_flight_max = limits.client_calls_in_flight_max
            async for frame in self.ws:
                if frame.type is expected:
                    data = frame.data
                    if len(data) > inline_max:  # decoded off the loop
                        await self.handle(data)
                        continue
                    try:
                        message = codec.decode(data, "the message")
                    except InvalidRequest as exc:  # not decodable, or nested too deep
                        await self._refuse(ProtocolError(str(exc)))
                        continue
                    fields = call_fields(message)
                    if fields is None or not self._call_reducer(*fields):
                        await self._handle_message(message)
                    elif len(self._calls) > in_flight_max:
                        # Stop reading until the oldest call is answered.
                        await self._wait_calls(in_flight_max)
                elif frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    reason = (
                        f"text frames are not accepted on {self.codec.protocol}: send msgpack "
                        "binary frames"
                        if self.codec.binary
                        else "binary frames are not accepted: send JSON text frames"
                    )
                    self.drop(WSCloseCode.UNSUPPORTED_DATA, reason)
                    break
        except Exception:
            logger.exception("WebSocket session of %s failed", self.identity.hex())
            self.drop(WSCloseCode.INTERNAL_ERROR, "internal error; see the server log")

    async def handle(self, data: str | bytes) -> None:
        """Serve one frame's request (``run`` serves the small ones itself)."""
        large = len(data) > limits.json_inline_bytes_max
        codec = self.codec
        try:
            # A large message is decoded (depth scan and decode) on a worker thread.
            request: ClientMessage = (
                await asyncio.to_thread(parse, data, codec) if large else parse(data, codec)
            )
        except ProtocolError as exc:
            await self._refuse(exc)
            return
        await self._dispatch(request, large)

    async def _handle_message(self, message: Any) -> None:
        """Serve a decoded frame's request."""
        try:
            request = parse_message(message, self.codec)
        except ProtocolError as exc:
            await self._refuse(exc)
            return
        await self._dispatch(request, False)

    async def _refuse(self, error: ProtocolError) -> None:
        await self._settle_calls()
        self.deliver(reply_for_error(error), 0)

    async def _dispatch(self, request: ClientMessage, large: bool) -> None:
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
        if request.ledger:
            if not self.feed.ledger_on:
                problem = (
                    'this database\'s ledger is off (signing = "off"): there are no leaf '
                    "hashes or checkpoints to follow"
                )
                self.deliver(
                    subscription_error(request.request_id, query_id, problem, "ledger_off"), 0
                )
                return
            if not self.ledger:
                self.ledger_from_size = request.ledger_from_size
            self.ledger = True
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
        flight together share an fsync (``calls.CallWorker``). Results are queued in the
        order the calls were sent (``_answer``), from the loop hand-off that resolves them."""
        forwarded = self.forwarder is not None and self.forwarder.applies()
        procedure = forwarded or request.reducer in self.hosted.db.module.procedures
        if procedure:  # a forwarded call too: its result comes from the leader, ungated
            self._procedures += 1
            pending = _PendingCall(request.request_id, -1)
            self._calls.append(pending)
        else:
            pending = self._pending(request.request_id)
        then = partial(self._answered, pending)
        try:
            self.take_rate("calls")
            if forwarded and self.forwarder is not None:
                task = asyncio.get_running_loop().create_task(
                    self.forwarder.call(request.reducer, request.args)
                )
                task.add_done_callback(partial(_forward, then))
                self._forwards.add(task)
                task.add_done_callback(self._forwards.discard)
                return
            convert = argument_converter(self.hosted.db.module, request.reducer)
            if large:  # converting large arguments is slow too: off the loop
                args, kwargs = await asyncio.to_thread(convert, request.args)
            else:
                args, kwargs = convert(request.args)
            future = submit_call(
                self.hosted,
                request.reducer,
                args,
                kwargs,
                self.identity,
                self.connection_id,
                then=then,
            )
            if future is not None:  # a procedure: its own threads, its own future
                future.add_done_callback(partial(_forward, then))
        except CosmictronError as exc:
            self._answered(pending, None, exc)
        if len(self._calls) > limits.client_calls_in_flight_max:
            # Stop reading until the oldest call is answered.
            await self._wait_calls(limits.client_calls_in_flight_max)

    def _call_reducer(self, request_id: RequestId, reducer: str, raw_args: Any) -> bool:
        """Submit a small call of one of the module's reducers, as ``_call`` does, without
        a request object or a coroutine; False (nothing done) for any other name. Its
        result is queued by the hand-off that resolves its batch, and written after
        every result of that batch is queued (``_flush``)."""
        binding = self.hosted.db.module.reducers.get(reducer)
        if binding is None:  # a procedure, or no such reducer: ``_call`` says which
            return False
        if self.forwarder is not None and self.forwarder.applies():
            return False  # cluster mode, a follower: ``_call`` forwards it to the leader
        pending = self._pending(request_id)
        try:
            self.take_rate("calls")
            args, kwargs = converter_of(binding)(raw_args)
            self.hosted.calls.submit_then(
                reducer,
                args,
                kwargs,
                self.identity,
                self.connection_id,
                partial(self._answered_in_batch, pending),
                self._after_batch,
                partial(self._reply_now, pending),
            )
        except CosmictronError as exc:
            self._answered(pending, None, exc)
        return True

    def _reply_now(self, pending: _PendingCall, outcome: CallOutcome) -> bool:
        """Write a durable call's result from the thread that waited for its sync, if
        nothing else of this client may be due before it; True if it went (its hand-off
        to the loop then only does the bookkeeping, ``_answer``). Runs off the loop,
        holding the GIL: what it reads, the loop changes only holding the GIL too.

        Nothing may be due before it when: the client subscribes to nothing (no update
        of its own transaction, which must precede the result, or of another's can be on
        its way to the queue), every earlier call's result has its place (``_placed``)
        and the queue is empty (they were all written; ``FrameWriter.busy`` covers a
        write in progress), and no procedure is in flight. A result that is not a scalar
        goes the loop's way (``Codec.committed`` declines it)."""
        if (
            self.closed
            or self.subscriptions
            or self.ledger
            or pending.seq != self._placed + 1
            or self._outbox
            or self._procedures
        ):
            return False
        encoded = self.codec.committed(pending.request_id, outcome.return_value, outcome.tx_offset)
        if encoded is None or not self.frames.write_now(encoded):
            return False
        pending.sent = True
        return True

    def _pending(self, request_id: RequestId) -> _PendingCall:
        """A reducer call's place among the calls in flight."""
        if self._procedures:  # its result waits behind a procedure's: do not gate
            pending = _PendingCall(request_id)
        else:
            self._submitted += 1
            pending = _PendingCall(request_id, self._submitted)
        self._calls.append(pending)
        return pending

    def _answered(
        self, pending: _PendingCall, outcome: CallOutcome | None, error: BaseException | None
    ) -> None:
        """A call's result arrived (on the loop): queue every result now in order."""
        self._answered_in_batch(pending, outcome, error)
        self._wake()

    def _answered_in_batch(
        self, pending: _PendingCall, outcome: CallOutcome | None, error: BaseException | None
    ) -> None:
        """As ``_answered``, in a hand-off that calls ``_flush`` after its last result."""
        pending.done = True
        pending.outcome = outcome
        pending.error = error
        self._answer()

    def _answer(self) -> None:
        """Queue the results of the oldest calls that are answered, in the order sent.

        The transaction's own TransactionUpdate was queued (under the writer lock) before
        the call was resolved, so it precedes the result. A large return value is
        encoded off the loop into a place reserved in the queue now (``_reserve``), so
        neither the results behind it nor later transactions' updates overtake it.
        """
        calls = self._calls
        while calls and calls[0].done:
            pending = calls.popleft()
            if pending.seq < 0:
                self._procedures -= 1
            if pending.sent:  # written by ``_reply_now``: it has had its place
                self._placed = pending.seq
                continue
            error = pending.error
            outcome = pending.outcome
            if error is not None or outcome is None:
                failure = error or InternalError("the call ended without a result")
                message = self._failure(pending.request_id, failure)
                if isinstance(failure, ClusterUnavailable):  # its update may never be acked
                    self._queue_ahead(pending.seq, message)
                else:
                    self._queue_result(pending.seq, 0, message)
                continue
            encoded = self.codec.committed(
                pending.request_id, outcome.return_value, outcome.tx_offset
            )
            if encoded is not None:  # a scalar: no message dict, no general encoder
                self._queue_result(pending.seq, outcome.tx_offset, encoded)
            elif small(outcome.return_value):
                message = self._result(pending.request_id, outcome)
                self._queue_result(pending.seq, outcome.tx_offset, message)
            else:
                slot = self._reserve(pending.seq, outcome.tx_offset)
                if slot is None:
                    continue
                self._encoding += 1
                asyncio.get_running_loop().create_task(self._answer_large(pending, outcome, slot))
        if self._progress is not None and not self._progress.done():
            self._progress.set_result(None)

    def _failure(self, request_id: RequestId, error: BaseException) -> dict[str, Any]:
        if not isinstance(error, CosmictronError):
            return reducer_result(request_id, error=str(error), error_code="internal_error")
        # The frames of the module's code go to its owner only (docs/design/errors.md).
        shown = error_document(error, show_traceback=self.identity == self.hosted.db.owner)
        return reducer_result(
            request_id,
            error=shown["message"],
            error_code=shown["code"],
            error_traceback=shown.get("traceback"),
            retry_after_s=retry_after_of(error),
        )

    def _result(self, request_id: RequestId, outcome: CallOutcome) -> dict[str, Any]:
        value = self.codec.form(outcome.return_value)
        return reducer_result(request_id, return_value=value, tx_offset=outcome.tx_offset)

    async def _answer_large(
        self, pending: _PendingCall, outcome: CallOutcome, slot: asyncio.Future[str | bytes]
    ) -> None:
        encode = self.codec.encode
        try:
            data = await asyncio.to_thread(
                lambda: encode(self._result(pending.request_id, outcome))
            )
        except CosmictronError as exc:
            data = encode(reducer_result(pending.request_id, error=str(exc), error_code=exc.code))
        except Exception:  # never leave the place empty: the queue would stall behind it
            logger.exception("encoding a reducer's result failed")
            data = encode(
                reducer_result(
                    pending.request_id, error="internal error", error_code="internal_error"
                )
            )
        finally:
            self._encoding -= 1
        self._fill(slot, data)
        self._answer()

    async def _wait_calls(self, at_most: int) -> None:
        """Wait until at most ``at_most`` calls are unanswered (0: and nothing is being
        encoded)."""
        while len(self._calls) > at_most or (at_most == 0 and self._encoding):
            self._progress = asyncio.get_running_loop().create_future()
            await self._progress

    async def _settle_calls(self) -> None:
        """Wait until every call sent so far has its result queued."""
        if self._calls or self._encoding:
            await self._wait_calls(0)

    async def _query(self, request: OneOffQuery) -> None:
        try:
            self.take_rate("queries")
            text, offset = await self.hosted.run(self._run_query, request)
        except CosmictronError as exc:
            self.deliver(query_error(request.request_id, str(exc), exc.code), 0)
            return
        self.deliver(text, offset)

    def _run_query(self, request: OneOffQuery) -> tuple[str | bytes, int]:
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
        form = self.codec.form
        rows = [row_to_json(row, columns, form) for row in result.rows]
        table = {"table_name": "result", "columns": columns, "rows": rows}
        reply = {"OneOffQueryResult": {"request_id": request.request_id, "tables": [table]}}
        return self.codec.encode(reply), offset

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


def retry_after_of(error: CosmictronError) -> float | None:
    """When to try again, for an error that says (HTTP sends it as ``Retry-After``):
    ``ClusterUnavailable`` (quorum lost, no leader yet), ``RateLimited``; else None."""
    retry_after_s = getattr(error, "retry_after_s", None)
    if isinstance(retry_after_s, int | float) and math.isfinite(retry_after_s):
        return float(retry_after_s)
    return None


def _forward(then: Any, future: asyncio.Future[Any]) -> None:
    """A procedure's future, done: its outcome or error to ``then``."""
    if future.cancelled():
        then(None, ConnectionResetError("the call was cancelled"))
    elif future.exception() is not None:
        then(None, future.exception())
    else:
        then(future.result(), None)
