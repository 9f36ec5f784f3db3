"""``Follower``: a node that does not lead a database keeps a read-only copy of it, live.

Issue 19, part 3 (replicas that serve). Opening a copy (:func:`open_follower`) is the
leader's first step without the rest: ``catchup.catch_up`` makes the local log end where
the stream ends (a diverged log, a deposed leader's unacknowledged tail, is set aside
first), then the database opens from that log as a *replica* (``Database.open_replica``:
no scheduler, no ``@init``, every write refused). From there the follower **tails** the
stream: an ordered push consumer (JetStream redelivers from the last sequence seen after
a gap or a lost heartbeat) hands each record, in sequence order, to one apply thread,
which appends it byte for byte and applies it (``Database.apply_replicated``), so the
copy's ``tx_offset`` is the leader's and its subscribers get the leader's updates at the
leader's offsets.

A probe asks the stream for its last sequence every ``PROBE_S``: it measures the lag,
notices a consumer that stopped delivering (then subscribes again from the applied
offset) and keeps :attr:`Follower.contact_at`, the last time the stream answered *with a
quorum* (:func:`quorate`: its leader in touch with a majority of its replicas). When it
has not for ``STALE_AFTER_S`` (NATS lost its quorum, or this node is cut off),
:attr:`Follower.stale` is true: reads keep serving the applied state and say so
(``Cosmictron-Stale``, docs/reference/http.md).

A record that does not continue the copy (it diverged) stops the follower with
:attr:`Follower.failure` set; the node's lease round closes it and opens it again, which
sets the diverged log aside and rebuilds from the stream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from cosmictron.cluster.catchup import DIVERGED, catch_up, diverged, set_aside
from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import log_subject, stream_name
from cosmictron.durability import DurabilityConfig
from cosmictron.errors import ClusterUnavailable, DurabilityError
from cosmictron.host import Database
from cosmictron.host.directory import load_new_module

logger = logging.getLogger(__name__)

PROBE_S = 0.5
"""How often the follower asks the stream for its last sequence."""

STALE_AFTER_S = 3.0
"""A follower whose stream has not answered for this long serves reads marked stale."""

STALLED_AFTER_S = 2.0
"""Behind the stream's end with no record delivered for this long: subscribe again."""

HEARTBEAT_S = 1.0
"""The consumer's idle heartbeat (an ordered consumer resets itself when they stop)."""


class Follower:
    """Tails one database's stream into its replica (see the module doc).

    Args:
        connection: the node's NATS connection.
        database: the database's name.
        db: its replica, opened by ``Database.open_replica`` on a log that ends where
            the tail starts.
    """

    def __init__(self, connection: NatsConnection, database: str, db: Database) -> None:
        self.connection = connection
        self.database = database
        self.db = db
        self.stream = stream_name(database)
        self.subject = log_subject(database)
        self.applied = db.core.persistence.next_offset - 1
        """The last stream sequence applied here (the leader's offset)."""
        self.stream_last = self.applied
        """The stream's last sequence when the probe last read it."""
        self.contact_at = time.monotonic()
        """When the stream last answered (a probe or a delivered record)."""
        self.failure: BaseException | None = None
        """Set when applying failed (a diverged copy): the node reopens it."""
        self._applied_changed = threading.Condition()
        self._records: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
        self._queued = self.applied  # loop thread only: the last sequence handed over
        self._delivered_at = time.monotonic()
        self._subscription: Any = None
        self._tasks: list[concurrent.futures.Future[Any]] = []
        self._resubscribe: asyncio.Task[None] | None = None
        self._closed = False
        self._apply_thread = threading.Thread(
            target=self._apply_loop, name=f"cosmictron-follow-{database}", daemon=True
        )

    # -- what the server reads -------------------------------------------------------

    @property
    def stale(self) -> bool:
        """Whether the stream has been out of reach for ``STALE_AFTER_S`` (or it failed)."""
        return self.failure is not None or time.monotonic() - self.contact_at > STALE_AFTER_S

    @property
    def stale_since(self) -> float | None:
        """While :attr:`stale`: when (wall-clock seconds) the stream last answered with a
        quorum, the moment from which this copy may be behind; None while current."""
        if self.failure is not None:
            return wall_clock(self.contact_at)
        return out_of_touch_since(self.contact_at)

    @property
    def lag(self) -> int:
        """Records the stream held, when last probed, that are not applied here yet."""
        return max(0, self.stream_last - self.applied)

    def wait_applied(self, offset: int, timeout_s: float) -> bool:
        """Block until ``offset`` is applied here; False when ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._applied_changed:
            while self.applied < offset:
                left = deadline - time.monotonic()
                if left <= 0 or self.failure is not None or self._closed:
                    return self.applied >= offset
                self._applied_changed.wait(left)
        return True

    # -- running ---------------------------------------------------------------------

    def start(self) -> Follower:
        """Start the apply thread, the tail and the probe."""
        self._apply_thread.start()
        self._tasks = [
            self.connection.submit(self._subscribe()),
            self.connection.submit(self._probe_loop()),
        ]
        return self

    def close(self) -> None:
        """Stop tailing and applying (the replica stays open: its owner closes it)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        try:
            self.connection.run(self._unsubscribe(), 5.0)
        except Exception:  # the loop is gone already: nothing runs on it
            pass
        self._records.put(None)
        if self._apply_thread.is_alive() and self._apply_thread is not threading.current_thread():
            self._apply_thread.join(10.0)
        with self._applied_changed:
            self._applied_changed.notify_all()

    # -- on the NATS loop ------------------------------------------------------------

    async def _unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception:  # a connection that is down drops it anyway
                pass

    async def _subscribe(self) -> None:
        """(Re)subscribe from the record after the last one handed to the apply thread."""
        from nats.js.api import ConsumerConfig, DeliverPolicy

        await self._unsubscribe()
        if self._closed:
            return
        try:
            self._subscription = await self.connection.js.subscribe(
                self.subject,
                stream=self.stream,
                cb=self._on_record,
                ordered_consumer=True,
                idle_heartbeat=HEARTBEAT_S,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=self._queued + 1,
                ),
            )
        except Exception as exc:  # no stream yet, or no quorum: the probe tries again
            logger.debug("follower of %r: subscribe failed: %r", self.database, exc)
        self._delivered_at = time.monotonic()

    async def _on_record(self, msg: Any) -> None:
        sequence = int(msg.metadata.sequence.stream)
        self.contact_at = self._delivered_at = time.monotonic()
        if sequence <= self._queued:
            return  # delivered again after a reset: applied already
        if sequence != self._queued + 1:
            # Not the next record (a consumer reset skipped some): start again from it.
            if self._resubscribe is None or self._resubscribe.done():
                self._resubscribe = asyncio.ensure_future(self._subscribe())
            return
        self._queued = sequence
        self._records.put((sequence, bytes(msg.data or b"")))

    async def _probe_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(PROBE_S)
            try:
                info = await asyncio.wait_for(
                    self.connection.js.stream_info(self.stream), STALE_AFTER_S
                )
            except Exception:  # no quorum, no stream yet, or cut off: stale after a while
                continue
            self.stream_last = int(info.state.last_seq)
            if not quorate(info):
                continue  # a leader that lost its peers answers until it steps down
            self.contact_at = time.monotonic()
            behind = self.stream_last > self._queued
            if behind and (
                self._subscription is None
                or time.monotonic() - self._delivered_at > STALLED_AFTER_S
            ):
                await self._subscribe()

    # -- on the apply thread ---------------------------------------------------------

    def _apply_loop(self) -> None:
        while True:
            item = self._records.get()
            if item is None or self._closed:
                return
            sequence, payload = item
            try:
                offset = self.db.apply_replicated(payload)
                if offset != sequence:
                    raise DurabilityError(
                        f"stream sequence {sequence} was applied at offset {offset}: "
                        f"the copy {DIVERGED}"
                    )
            except BaseException as exc:
                logger.warning("follower of %r stopped at %d: %s", self.database, sequence, exc)
                self.failure = exc
                with self._applied_changed:
                    self._applied_changed.notify_all()
                return
            with self._applied_changed:
                self.applied = sequence
                self._applied_changed.notify_all()


def out_of_touch_since(contact_at: float) -> float | None:
    """The wall-clock time of ``contact_at`` (a ``time.monotonic()`` reading of the last
    word from a quorum) once it is older than ``STALE_AFTER_S``; None before. The one rule
    for "stale" of a follower's copy and of a leader's lease (``ClusterNode.stale_since``)."""
    if time.monotonic() - contact_at <= STALE_AFTER_S:
        return None
    return wall_clock(contact_at)


def wall_clock(monotonic_at: float) -> float:
    """A ``time.monotonic()`` reading as wall-clock seconds (``time.time()``'s scale)."""
    return time.time() - (time.monotonic() - monotonic_at)


def quorate(info: Any) -> bool:
    """Whether a stream's info shows its leader in touch with a majority of its replicas
    (itself and every peer not offline and heard from within ``STALE_AFTER_S``). A leader
    cut off from its peers still answers ``stream_info`` until it steps down (about ten
    seconds of Raft time): its answer proves nothing about what the cluster committed.
    Nor does an answer with no leader at all: a server whose peers are gone answers with
    ``leader`` None and the lost peers listed as heard ``0`` ns ago, which counted as a
    quorum and made a stale replica look current (tests/cluster/test_stale_subscribers.py).
    """
    cluster = getattr(info, "cluster", None)
    config = getattr(info, "config", None)
    size = int(getattr(config, "num_replicas", None) or 1)
    if cluster is None:  # a server outside any cluster: only a one-copy stream is whole
        return size <= 1
    if not cluster.leader:
        return False
    peers = cluster.replicas or []
    heard = [
        peer
        for peer in peers
        if not peer.offline and (peer.active is None or peer.active < STALE_AFTER_S * 1e9)
    ]
    return 2 * (1 + len(heard)) > max(size, 1 + len(peers))


def open_follower(
    connection: NatsConnection,
    node_id: str,
    name: str,
    source: bytes,
    filename: str,
    owner: Any,
    path: str | os.PathLike[str],
    durability: DurabilityConfig,
) -> Follower:
    """Catch up, open the replica, start tailing; the running follower.

    When the stream cannot be read (no quorum) and a local copy exists, the copy opens
    as it is (stale until the stream answers); without one, ``ClusterUnavailable``.

    Raises:
        ClusterUnavailable: the stream could not be read and there is no local copy.
        DurabilityError, SchemaError: the copy could not be opened.
    """
    directory = Path(path)
    try:
        catch_up(connection, directory, name, durability)
    except DurabilityError as exc:
        if not diverged(exc):
            raise
        aside = set_aside(directory)
        logger.warning("cluster: %s diverged from the stream; set aside in %s", directory, aside)
        catch_up(connection, directory, name, durability)
    except ClusterUnavailable:
        if not (directory / "module" / "module.py").exists():
            raise
    stored = (directory / "module" / "module.py").exists()
    module = None if stored else load_new_module(source, filename)
    db = Database.open_replica(directory, module, node=node_id, durability=durability, owner=owner)
    try:
        return Follower(connection, name, db).start()
    except BaseException:
        db.close()
        raise
