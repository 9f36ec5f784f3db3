"""``JetStreamLog``: one database's commit log replicated as a JetStream stream.

A ``durability.Replicator``: the commit log hands it each record as it is appended (under
the writer lock, in offset order) and it publishes the record's payload, unchanged, to the
database's stream (file storage, ``replicas`` copies; the stream's sequence *is* the
record's offset). Publishes are pipelined (many in flight, one sender coroutine keeps
their order on the wire) and every one carries

- ``Nats-Expected-Last-Sequence: offset - 1``: JetStream stores it only right after the
  record before it, so a deposed leader's append is refused (``err_code`` 10071) once the
  new leader appended anything (it appends an epoch-start record before serving);
- each leadership term publishes on a subject of its own (``<log subject>.<epoch>``), and
  a new term's log, on opening, makes the stream take *only* its subject: once it has, no
  publish of an older term can reach the stream at all, however many it had in flight.
  Position alone does not fence a pipelining leader: with records 2 and 3 in flight and
  the new leader's epoch record stored at 2, the old 2 is refused but the old 3 (expecting
  2) would fit. A per-subject expectation would fence it too, but JetStream refuses one
  while an earlier publish is in flight (``err_code`` 10164), which serialised every
  append (docs/design/cluster.md, "Fencing"). A deposed leader learns it is fenced from
  "no responders" with its subject gone from the stream's (:meth:`_fenced_out`);
- ``Nats-Msg-Id: <offset>-<sha256 of the payload>``: a retried publish of a stored record is
  answered with its original sequence and ``duplicate`` *before* the sequence check, so a
  retry after a lost ack or a stream leader change never doubles a record.

When an ack does not come in ``ack_timeout_s`` or a publish fails, the sender stops
pipelining and *resyncs*: it republishes the unacknowledged records one at a time from
the first (duplicates are acks) until all are acknowledged, then pipelines again. A
refusal of that first record as stale means another node leads: the log fails for good
with ``NotLeader`` (nothing unacknowledged is reported committed; the node rejoins as a
follower). A waiter gives up after ``unavailable_after_s`` with ``ClusterUnavailable``
(HTTP 503 with ``Retry-After``), the record staying queued: the outcome is unknown, never
doubled.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from _thread import LockType
from _thread import allocate_lock as _allocate_lock
from collections import deque
from collections.abc import Callable
from typing import Any

from cosmictron.cluster.connection import REQUEST_TIMEOUT_S, NatsConnection
from cosmictron.cluster.metrics import CLUSTER_METRICS
from cosmictron.errors import ClusterUnavailable, DurabilityError, NotLeader

WRONG_LAST_SEQUENCE = 10071
"""JetStream's ``err_code`` for a publish whose ``Nats-Expected-Last-Sequence`` is stale."""

NO_PLACEMENT = 10005
"""JetStream's ``err_code`` for "no suitable peers for placement" (a peer seen offline)."""

ACK_TIMEOUT_S = 2.0
"""An ack not back after this long starts a resync (the stream may have changed leader)."""

UNAVAILABLE_AFTER_S = 10.0
"""A committing caller waits this long for its ack, then gets ``ClusterUnavailable``."""

START_TIMEOUT_S = 10.0
"""Opening the log retries unanswered JetStream requests this long. A request can go
unanswered (no error, just no reply) while a meta leader takes over, notably on a cluster
that has just started; each retry comes after ``REQUEST_TIMEOUT_S``, so this is kept apart
from ``unavailable_after_s`` (a committer's wait), which may be shorter than one request."""

RETRY_AFTER_S = 2.0
"""The ``Retry-After`` of a ``ClusterUnavailable``: about one stream leader election."""

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def stream_name(database: str) -> str:
    """The stream of a database's log: ``COSMICTRON_LOG_<name>`` (hex when the name has
    characters a stream name may not)."""
    if _SAFE_NAME.match(database):
        return f"COSMICTRON_LOG_{database}"
    return f"COSMICTRON_LOG_x{database.encode().hex()}"


def log_subject(database: str) -> str:
    """The subjects of a database's log: one per leadership term (:func:`term_subject`),
    all matched by this wildcard (the stream's subject, and a reader's filter)."""
    return _subject_base(database) + ".>"


def term_subject(database: str, epoch: int) -> str:
    """The subject one leadership term (its lease epoch) publishes the log's records on."""
    return f"{_subject_base(database)}.{epoch}"


def _term_of(subject: str) -> int:
    """The epoch of a term subject (``-1``: not one, as a stream made before terms)."""
    tail = subject.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _subject_base(database: str) -> str:
    return "cosmictron.log." + stream_name(database).removeprefix("COSMICTRON_LOG_")


def message_id(offset: int, payload: bytes) -> str:
    """A record's ``Nats-Msg-Id``: its offset and content, so only the same record dedupes."""
    return f"{offset}-{hashlib.sha256(payload).hexdigest()[:32]}"


class JetStreamLog:
    """A database's log as a JetStream stream (see the module doc).

    Args:
        connection: a connected :class:`NatsConnection`.
        database: the database's name (names the stream and subject).
        epoch: the leadership term (the lease's epoch) whose subject the records go on;
            each term must have its own (see the module doc).
        replicas: copies JetStream keeps (3 in production; 1 for a one-server test).
    """

    def __init__(
        self,
        connection: NatsConnection,
        database: str,
        *,
        epoch: int = 0,
        replicas: int = 3,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        unavailable_after_s: float = UNAVAILABLE_AFTER_S,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.connection = connection
        self.database = database
        self.stream = stream_name(database)
        self.epoch = epoch
        self.subject = term_subject(database, epoch)
        self.replicas = replicas
        self.ack_timeout_s = ack_timeout_s
        self.unavailable_after_s = unavailable_after_s
        self.start_timeout_s = start_timeout_s
        self._acked = 0
        self.acked_at = time.monotonic()
        """``time.monotonic()`` of the last acknowledgement that moved ``acked_offset`` on:
        the last time a quorum stored this log's records (``ClusterNode.stale_since``)."""
        self._failure: DurabilityError | None = None
        self._lock = threading.Lock()
        self._waiters: list[tuple[int, LockType]] = []
        """``(offset, parked lock)`` of each caller waiting for its ack."""
        self.refuse_commits: Callable[[Exception | None], None] | None = None
        """Set by the persistence layer: told the ``NotLeader`` failure, so the host
        refuses new transactions at once instead of running them to a refused append."""
        # Loop-thread state (touched only by coroutines and callbacks on the loop):
        self._pending: deque[tuple[int, bytes, str]] = deque()
        self._sent_at: dict[int, float] = {}
        self._queue: asyncio.Queue[tuple[int, bytes, str]] | None = None
        self._sent_through = 0
        self._resyncing = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._closed = False
        self.resyncs = 0
        self.published = 0

    # -- Replicator ------------------------------------------------------------------

    @property
    def acked_offset(self) -> int:
        """The highest offset JetStream acknowledged; every lower one is stored too."""
        return self._acked

    def start(self, last_offset: int, last_hash: bytes) -> None:
        """Create the stream if needed and check it ends where the local log ends.

        Raises:
            ClusterUnavailable: JetStream did not answer.
            DurabilityError: the stream and the local log disagree on where the log ends.
        """
        try:
            last_seq = self.connection.run(
                self._setup(), self.start_timeout_s + REQUEST_TIMEOUT_S + 1.0
            )
        except DurabilityError:
            raise
        except Exception as exc:
            raise ClusterUnavailable(
                f"JetStream did not answer for the log of {self.database!r} ({exc!r})",
                RETRY_AFTER_S,
            ) from exc
        if last_seq != last_offset:
            raise DurabilityError(
                f"the replicated log of {self.database!r} ends at {last_seq} but the local log "
                f"at {last_offset}; the node must catch up (or drop unacknowledged records) first"
            )
        self._acked = self._sent_through = last_offset

    async def _setup(self) -> int:
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError

        js = self.connection.js
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                try:
                    info = await js.stream_info(self.stream)
                    info = await self._take_subject(info)
                except NotFoundError:
                    info = await js.add_stream(
                        StreamConfig(
                            name=self.stream,
                            subjects=[self.subject],
                            num_replicas=self.replicas,
                            storage=StorageType.FILE,
                            duplicate_window=120.0,
                            allow_direct=True,
                        )
                    )
                break
            except (TimeoutError, ServiceUnavailableError, BadRequestError) as exc:
                # A meta-leader election or a busy cluster: JetStream answers shortly. A
                # peer that missed its heartbeats under load is "offline" for placement
                # (err_code 10005) until its next one; any other bad request is ours.
                placement = isinstance(exc, BadRequestError) and exc.err_code == NO_PLACEMENT
                if isinstance(exc, BadRequestError) and not placement:
                    raise
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)
        self._queue = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._watchdog()),
        ]
        return int(info.state.last_seq)

    def publish(self, offset: int, payload: bytes) -> None:
        """Queue one record for the stream; returns at once (the commit path)."""
        self.connection.call_soon(self._enqueue, offset, payload)

    def wait_acked(self, offset: int) -> None:
        """Block until ``offset`` is acknowledged (see the module doc for the failures).

        Each waiter parks on a lock of its own, released by the ack that covers it: an
        ack wakes only the callers it acknowledged (a shared condition woke all of them
        on every ack, to re-check and park again under the GIL).
        """
        if offset <= self._acked:
            return
        parked = _allocate_lock()
        parked.acquire()
        with self._lock:
            if offset <= self._acked:
                return
            if self._failure is not None:
                raise self._failure
            self._waiters.append((offset, parked))
        if not parked.acquire(timeout=self.unavailable_after_s):
            with self._lock:
                if (offset, parked) in self._waiters:
                    self._waiters.remove((offset, parked))
            if offset <= self._acked:
                return
            if self._failure is not None:
                raise self._failure
            raise ClusterUnavailable(
                f"the replicated log of {self.database!r} did not acknowledge offset "
                f"{offset} within {self.unavailable_after_s:.0f}s (JetStream has no "
                "quorum?); the transaction is not reported committed",
                RETRY_AFTER_S,
            )
        if offset > self._acked and self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Stop the sender; unacknowledged records stay unacknowledged. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            try:
                self.connection.run(self._cancel_tasks(), 5.0)
            except Exception:  # the loop is gone already: nothing runs
                pass
        self._fail(DurabilityError(f"the replicated log of {self.database!r} is closed"))

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    # -- on the loop thread ----------------------------------------------------------

    def _enqueue(self, offset: int, payload: bytes) -> None:
        if self._failure is not None or self._queue is None:
            return
        record = (offset, payload, message_id(offset, payload))
        self._pending.append(record)
        self._queue.put_nowait(record)

    def _headers(self, offset: int, msg_id: str) -> dict[str, str]:
        return {"Nats-Msg-Id": msg_id, "Nats-Expected-Last-Sequence": str(offset - 1)}

    async def _take_subject(self, info: Any) -> Any:
        """Make the stream take only this term's subject (module doc: the fence), unless a
        newer term already took it: then this one is stale and must not serve."""
        subjects = list(info.config.subjects or ())
        if subjects == [self.subject]:
            return info
        newest = max((_term_of(subject) for subject in subjects), default=-1)
        if newest > self.epoch:
            raise NotLeader(
                f"the replicated log of {self.database!r} is taken by term {newest}, newer "
                f"than this node's {self.epoch}: another node leads it now",
                RETRY_AFTER_S,
            )
        info.config.subjects = [self.subject]
        return await self.connection.js.update_stream(info.config)

    async def _fenced_out(self) -> bool:
        """True when the stream no longer takes this term's subject: a newer term opened
        it (see the module doc), so nothing of this term can be stored any more."""
        try:
            info = await self.connection.js.stream_info(self.stream)
        except Exception:  # no answer: not known to be fenced, so retried
            return False
        return self.subject not in (info.config.subjects or ())

    async def _send_loop(self) -> None:
        assert self._queue is not None
        js = self.connection.js
        queue = self._queue
        while True:
            offset, payload, msg_id = await queue.get()
            if self._resyncing or offset <= self._sent_through or self._failure is not None:
                continue  # the resync sends it (or sent it), or nothing is sent any more
            self._sent_at[offset] = time.monotonic()
            self._sent_through = offset
            try:
                future = await js.publish_async(
                    self.subject, payload, headers=self._headers(offset, msg_id)
                )
            except Exception:  # disconnected or stalled: resync retries it
                self._start_resync()
                continue
            self.published += 1
            future.add_done_callback(lambda f, o=offset: self._on_ack(o, f))

    def _on_ack(self, offset: int, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            if offset > self._acked:
                self._start_resync()
            return
        ack = future.result()
        if ack.seq != offset:
            self._fail(
                DurabilityError(
                    f"the replicated log of {self.database!r} stored offset {offset} at "
                    f"sequence {ack.seq}: the stream and the log disagree"
                )
            )
            return
        self._advance(offset)

    def _advance(self, offset: int) -> None:
        if offset <= self._acked:
            return
        pending = self._pending
        now = time.monotonic()
        while pending and pending[0][0] <= offset:
            sent = self._sent_at.pop(pending.popleft()[0], None)
            if sent is not None:  # publish to ack: /metrics' cosmictron_cluster_append_seconds
                CLUSTER_METRICS.observe_append(self.database, now - sent)
        self.acked_at = now
        with self._lock:
            self._acked = offset
            waiters = self._waiters
            woken = [parked for waited, parked in waiters if waited <= offset]
            if woken:
                self._waiters = [waiter for waiter in waiters if waiter[0] > offset]
        for parked in woken:
            parked.release()

    def _fail(self, failure: DurabilityError) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = failure
            woken = [parked for _, parked in self._waiters]
            self._waiters = []
        for parked in woken:
            parked.release()
        if self.refuse_commits is not None and isinstance(failure, NotLeader):
            self.refuse_commits(failure)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.ack_timeout_s / 4)
            if self._resyncing or not self._pending or self._failure is not None:
                continue
            oldest = self._sent_at.get(self._pending[0][0])
            if oldest is not None and time.monotonic() - oldest > self.ack_timeout_s:
                self._start_resync()

    def _start_resync(self) -> None:
        if self._resyncing or self._failure is not None or self._closed:
            return
        self._resyncing = True
        self.resyncs += 1
        self._tasks.append(asyncio.create_task(self._resync()))

    async def _resync(self) -> None:
        """Republish the unacknowledged records one at a time, from the first."""
        from nats.errors import NoRespondersError
        from nats.js.errors import APIError, NoStreamResponseError

        js = self.connection.js
        try:
            while self._pending and self._failure is None:
                offset, payload, msg_id = self._pending[0]
                if offset <= self._acked:
                    self._pending.popleft()
                    continue
                try:
                    ack = await js.publish(
                        self.subject,
                        payload,
                        timeout=self.ack_timeout_s,
                        headers=self._headers(offset, msg_id),
                    )
                except APIError as exc:
                    if exc.err_code == WRONG_LAST_SEQUENCE:
                        self._fail(
                            NotLeader(
                                f"the replicated log of {self.database!r} refused offset "
                                f"{offset} as stale: another node leads it now",
                                RETRY_AFTER_S,
                            )
                        )
                        return
                    await asyncio.sleep(0.25)
                    continue
                except Exception as exc:  # no quorum or disconnected: try again
                    no_stream = isinstance(exc, (NoRespondersError, NoStreamResponseError))
                    if no_stream and await self._fenced_out():
                        self._fail(
                            NotLeader(
                                f"the replicated log of {self.database!r} no longer takes "
                                f"this node's term ({self.subject}): another node leads it now",
                                RETRY_AFTER_S,
                            )
                        )
                        return
                    await asyncio.sleep(0.25)
                    continue
                if ack.seq != offset:
                    self._fail(
                        DurabilityError(
                            f"the replicated log of {self.database!r} stored offset {offset} "
                            f"at sequence {ack.seq}: the stream and the log disagree"
                        )
                    )
                    return
                self._sent_through = max(self._sent_through, offset)
                self._advance(offset)
        finally:
            self._resyncing = False
