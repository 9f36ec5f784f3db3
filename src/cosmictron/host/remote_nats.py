"""Cross-database calls through NATS JetStream: the relay's cluster transport.

In cluster mode the target database may lead on another node, so the relay does not
apply a call itself: ``NatsTransport`` publishes the outbox entry to the target's inbox
stream (``COSMICTRON_INBOX_<name>``, subject ``cosmictron.inbox.<name>``, R3 file
storage) with ``Nats-Msg-Id = <source>:<seq>``. JetStream's duplicate window drops a
republish of the same entry (the relay retries blindly after any crash); the entry is
settled in the source once JetStream has acknowledged storing it, because from then on
the stream, not the outbox, holds it durably.

``InboxConsumer`` runs where the target database leads: a durable pull consumer takes the
stream's messages one at a time, in order, and applies each with the same rule as the
local transport (``remote.apply_remote``: the call and the source's inbox mark commit in
one transaction, a call at or below the mark is skipped), and only then acks it. A crash
between apply and ack redelivers a message whose mark is already there: skipped. A
message older than the duplicate window that was published twice is also skipped by the
mark. Messages are taken one at a time so that a failing call is retried before any
later one (the mark needs per-source order); after ``attempts_max`` failures it is acked
and its error logged in the target's module log (the source has settled it already:
in cluster mode the caller's owner reads a target-side failure in the target's log).

``nats-py`` is imported only here and only when these classes are built: single-node
mode needs no NATS (the ``cluster`` extra installs it). Each object runs its own asyncio
loop on a thread, since the relay and the databases are synchronous.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgpack

from cosmictron import limits
from cosmictron.errors import ClusterUnavailable, CosmictronError
from cosmictron.host import remote
from cosmictron.host.core import DatabaseCore
from cosmictron.host.remote_relay import Delivery, Outcome
from cosmictron.nats_client import connect_nats
from cosmictron.values import Identity

logger = logging.getLogger(__name__)

T = TypeVar("T")

DUPLICATE_WINDOW_S = 120.0
"""JetStream's dedupe window on inbox streams; older duplicates are caught by the mark."""


ACK_WAIT_S = 10.0
"""How long a message taken by a consumer that then died waits before it is delivered
again; the consumer marks a message in progress while it retries a failing call."""


def inbox_stream(database: str) -> str:
    """The inbox stream of ``database`` (database names are ``[a-z0-9_-]``-safe, see
    ``cosmictron.names``; a ``.`` would be a subject separator, so it is refused there)."""
    return "COSMICTRON_INBOX_" + database.replace("-", "_").replace(".", "_")


def inbox_subject(database: str) -> str:
    return f"cosmictron.inbox.{database}"


def message_id(delivery: Delivery) -> str:
    """``<source identity hex>:<seq>``: one id per outbox entry, whoever publishes it."""
    return f"{delivery.source}:{delivery.entry.seq}"


class _Loop:
    """An asyncio loop on its own daemon thread, for synchronous callers."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


ENSURE_STREAM_S = 20.0
"""How long creating an inbox stream retries unanswered requests: right after a meta
leader's election a JetStream request can go unanswered for its whole timeout (5 s
here) and a retry succeeds, so this holds several requests."""


async def _ensure_stream(js: Any, database: str, replicas: int) -> None:
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js import api
    from nats.js.errors import NotFoundError, ServiceUnavailableError

    name = inbox_stream(database)
    deadline = time.monotonic() + ENSURE_STREAM_S
    while True:
        try:
            try:
                await js.stream_info(name)
            except NotFoundError:
                await js.add_stream(
                    api.StreamConfig(
                        name=name,
                        subjects=[inbox_subject(database)],
                        storage=api.StorageType.FILE,
                        num_replicas=replicas,
                        duplicate_window=DUPLICATE_WINDOW_S,
                    )
                )
            return
        except (NatsTimeout, ServiceUnavailableError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


class NatsTransport:
    """The relay's transport in cluster mode: publish each entry to its target's inbox."""

    def __init__(self, servers: list[str], replicas: int = 3, timeout_s: float = 5.0) -> None:
        self._loop = _Loop("remote-nats-publish")
        self._timeout_s = timeout_s
        self._replicas = replicas
        self._streams: set[str] = set()
        self._nc: Any = self._loop.run(connect_nats(servers=servers), timeout_s * 2)
        self._js = self._nc.jetstream()

    def deliver(self, delivery: Delivery) -> Outcome:
        entry = delivery.entry
        payload = msgpack.packb(
            [delivery.source, delivery.sender.data, entry.seq, entry.reducer, entry.args]
        )
        try:
            ack = self._loop.run(self._publish(entry.database, payload, delivery), self._timeout_s)
        except Exception as exc:  # NATS unreachable, no quorum, timeout: try again later
            return Outcome("unavailable", f"inbox of {entry.database!r}: {exc!r}")
        return Outcome("duplicate" if ack.duplicate else "applied")

    async def _publish(self, database: str, payload: bytes, delivery: Delivery) -> Any:
        if database not in self._streams:
            await _ensure_stream(self._js, database, self._replicas)
            self._streams.add(database)
        return await self._js.publish(
            inbox_subject(database),
            payload,
            timeout=self._timeout_s,
            headers={"Nats-Msg-Id": message_id(delivery)},
        )

    def close(self) -> None:
        try:
            self._loop.run(self._nc.close(), self._timeout_s)
        finally:
            self._loop.stop()


class InboxConsumer:
    """Applies the calls in ``database``'s inbox stream to ``core``, in order, once each."""

    def __init__(
        self,
        servers: list[str],
        database: str,
        core: DatabaseCore,
        replicas: int = 3,
        attempts_max: int | None = None,
        retry_s: float | None = None,
    ) -> None:
        self.database = database
        self.core = core
        self.attempts_max = attempts_max or limits.remote_call_attempts_max
        self.retry_s = retry_s if retry_s is not None else limits.remote_call_retry_s
        self.applied = 0
        self.skipped = 0
        self.left = 0
        """Messages handed back for redelivery: this node could not apply them."""
        self._closed = threading.Event()
        self._loop = _Loop(f"remote-inbox-{database}")
        self._nc: Any = self._loop.run(connect_nats(servers=servers), 10)
        self._js = self._nc.jetstream()
        self._loop.run(_ensure_stream(self._js, database, replicas), ENSURE_STREAM_S + 10)
        self._task = asyncio.run_coroutine_threadsafe(self._consume(), self._loop.loop)

    async def _consume(self) -> None:
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js import api

        # One unacknowledged message at a time: a message a crashed consumer took is
        # redelivered before any later one, so the calls of one source reach the
        # database in sequence order, which is what lets one mark per source tell a
        # redelivery from a new call (with more in flight, a later call could raise the
        # mark past a redelivered one, which would then be skipped: lost).
        subscription = await self._js.pull_subscribe(
            inbox_subject(self.database),
            durable=f"apply_{inbox_stream(self.database)}",
            stream=inbox_stream(self.database),
            config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.EXPLICIT,
                max_ack_pending=1,
                ack_wait=ACK_WAIT_S,
            ),
        )
        while not self._closed.is_set():
            try:
                [message] = await subscription.fetch(1, timeout=1.0)
            except NatsTimeout:
                continue
            except Exception:
                if self._closed.is_set():
                    return
                logger.exception("inbox of %s: fetch failed", self.database)
                await asyncio.sleep(0.5)
                continue
            applying = asyncio.get_running_loop().run_in_executor(None, self._apply, message.data)
            while True:  # keep the message ours while a failing call is retried
                done, _ = await asyncio.wait({applying}, timeout=ACK_WAIT_S / 3)
                if done:
                    break
                await message.in_progress()
            if await applying:
                await message.ack_sync()
            else:  # not applied here: redelivered, to whichever node leads the target now
                self.left += 1
                await message.nak(delay=self.retry_s)

    def _apply(self, data: bytes) -> bool:
        """Apply one message with bounded retries; True once it may be acked.

        False when this node cannot apply it at all (it no longer leads the target, the
        replicated log has no quorum, or the database was closed under it): the message is
        left to be redelivered rather than given up, since giving up acks it and the node
        that leads now would never see the call. A redelivery of a call that did land is
        skipped by the mark.
        """
        source, sender, seq, reducer, args = msgpack.unpackb(data)
        for attempt in range(1, self.attempts_max + 1):
            if self._closed.is_set() or self.core.closed:
                return False
            try:
                outcome = remote.apply_remote(
                    self.core, source, seq, reducer, args, Identity(sender)
                )
            except ClusterUnavailable:  # NotLeader too: the outcome is the leader's
                return False
            except CosmictronError as exc:
                if self._closed.is_set() or self.core.closed:
                    return False
                error = str(exc) or type(exc).__name__
                if attempt == self.attempts_max:
                    self.core.log.append(
                        "ERROR",
                        f"call_remote #{seq} from {source[:16]} to {self.database}.{reducer} "
                        f"failed after {attempt} attempts; given up: {error}",
                        remote.REMOTE_SETTLED,
                    )
                    return True
                time.sleep(self.retry_s * 2 ** (attempt - 1))
                continue
            if outcome.status == "applied":
                self.applied += 1
            else:
                self.skipped += 1
            return True
        return True  # unreachable: the last attempt returns

    def close(self) -> None:
        """Stop taking messages (one being applied is finished first); idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._task.result(timeout=10)
        except Exception:
            logger.debug("inbox consumer of %s ended with an error", self.database)
        try:
            self._loop.run(self._nc.close(), 10)
        finally:
            self._loop.stop()
