"""``Lease``: who leads a database, as a key in a JetStream KV bucket, renewed by compare-and-set.

One key per database in the bucket ``COSMICTRON_LEASES`` (R3). Its value names the holder
(``{"node": ..., "database": ...}``); its *revision* (the KV's sequence, which only grows) at
the write that took it is the holder's **epoch**. Every write is a compare-and-set on the
revision last seen (``update(key, value, last=revision)``): two nodes racing for one lease
cannot both win, and
a holder whose renewal fails knows at once that someone else moved the key.

Time: the holder renews every ``renew_s``; a contender takes the lease over only after it
watched the same revision unchanged for ``ttl_s`` on its *own* monotonic clock (no clock
agreement between machines is needed), in touch with a quorum all along: a request of its
own that found none (``NatsConnection.out_of_touch_at``) starts the watch again, so after
an outage the holder, whose renewals failed too, has a whole TTL to renew.

The lease alone is not the safety net: a holder that has stopped (SIGSTOP, a long GC
pause) may still believe it leads for a moment after its lease passed. What makes that
harmless is the log's fencing: the new leader appends an epoch-start record before
serving, and the old leader's next append is refused
(``Nats-Expected-Last-Sequence``, ``jetstream_log.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosmictron.cluster.connection import NatsConnection, kv_bucket
from cosmictron.cluster.jetstream_log import stream_name
from cosmictron.cluster.metrics import CLUSTER_METRICS

LEASE_BUCKET = "COSMICTRON_LEASES"
"""The KV bucket of leases, one key per database."""

LEASE_TTL_S = 3.0
"""A lease whose revision did not change for this long may be taken over."""

LEASE_RENEW_S = 1.0
"""How often the holder renews (well inside the TTL: two renewals may fail)."""


@dataclass(frozen=True)
class LeaseState:
    """The key as last read: its holder (None: nobody) and revision (the epoch; 0: no key);
    ``successor``, when a holder released it in a planned hand-over (``placement.py``),
    the node it was handed to."""

    holder: str | None
    revision: int
    successor: str | None = None


class Lease:
    """One node's view of one database's lease (see the module doc).

    Args:
        connection: a connected :class:`NatsConnection`.
        database: the database the lease is for.
        node_id: this node's id (``--node-id``).
        replicas: copies of the KV bucket (3 in production).
    """

    def __init__(
        self,
        connection: NatsConnection,
        database: str,
        node_id: str,
        *,
        replicas: int = 3,
        ttl_s: float = LEASE_TTL_S,
        grace_s: Callable[[], float] | None = None,
    ) -> None:
        self.connection = connection
        self.grace_s = grace_s
        """Extra seconds past the TTL before this node takes a silent lease: placement's
        preference for who takes over (``Placer.takeover_grace_s``)."""
        self.database = database
        self.node_id = node_id
        self.replicas = replicas
        self.ttl_s = ttl_s
        self.key = stream_name(database).removeprefix("COSMICTRON_LOG_")
        self.epoch = 0
        """The revision at which this node took the lease: its tenure (0: not held)."""
        self.revision = 0
        """The key's revision after this node's last write (the next renewal's compare)."""
        self._seen: LeaseState | None = None
        self._seen_at = 0.0
        self.renewed_at = 0.0
        """``time.monotonic()`` of the last write of this node's that the bucket took (its
        acquisition or a renewal): the last time a quorum confirmed this node leads."""

    def _value(self, successor: str | None = None) -> bytes:
        if successor is not None:  # released, handed to ``successor``
            return json.dumps(
                {"node": None, "database": self.database, "handover": successor}
            ).encode()
        return json.dumps({"node": self.node_id, "database": self.database}).encode()

    async def _bucket(self) -> Any:
        return await kv_bucket(self.connection.js, LEASE_BUCKET, self.replicas)

    async def _read(self) -> LeaseState:
        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        kv = await self._bucket()
        try:
            entry = await kv.get(self.key)
        except (KeyNotFoundError, KeyDeletedError):
            return LeaseState(None, 0)
        doc = json.loads(entry.value or b"{}")
        return LeaseState(doc.get("node"), int(entry.revision or 0), doc.get("handover"))

    def read(self) -> LeaseState:
        """The lease as JetStream has it now."""
        return self.connection.run(self._read(), 10.0)

    async def _write(self, last: int, successor: str | None = None) -> int | None:
        from nats.js.errors import APIError, KeyWrongLastSequenceError

        kv = await self._bucket()
        value = self._value(successor)
        try:
            if last == 0:
                return int(await kv.create(self.key, value))
            return int(await kv.update(self.key, value, last=last))
        except KeyWrongLastSequenceError:
            return None
        except APIError as exc:
            if exc.err_code == 10071:  # "wrong last sequence" from the stream itself
                return None
            raise

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it, this node does, or its holder went silent.

        Returns True with :attr:`epoch` set to the new revision when this node now holds
        it; False when another node holds it (or won a race for it).
        """
        state = self.read()
        now = time.monotonic()
        # A watch counts only time in touch with a quorum: out of touch, this node cannot
        # tell a silent holder from one renewing unseen, and after an outage the holder
        # gets a whole TTL to renew before anyone takes over (else the lease moved at
        # random as a quorum came back, reopening every copy on every node).
        blind = self.connection.out_of_touch_at >= self._seen_at
        if self._seen is None or state != self._seen or blind:
            self._seen, self._seen_at = state, now
        released_to_us = state.holder is None and state.successor in (None, self.node_id)
        free = state.revision == 0 or state.holder == self.node_id or released_to_us
        grace = self.grace_s() if self.grace_s is not None else 0.0
        expired = now - self._seen_at >= self.ttl_s + grace
        if not (free or expired):
            return False
        revision = self.connection.run(self._write(state.revision), 10.0)
        if revision is None:
            return False
        self.epoch = self.revision = revision
        self._seen, self._seen_at = LeaseState(self.node_id, revision), time.monotonic()
        self.renewed_at = self._seen_at
        if state.holder not in (None, self.node_id):
            CLUSTER_METRICS.took_over(self.database, "expired")
        elif state.holder is None and state.successor == self.node_id:
            CLUSTER_METRICS.took_over(self.database, "handover")
        return True

    def renew(self) -> bool:
        """Renew the lease by compare-and-set on the revision held.

        Returns False (and forgets the epoch) when the key moved: another node took it.
        """
        if self.epoch == 0:
            return False
        try:  # an answer later than a TTL keeps nothing: give up and try the next round
            revision = self.connection.run(self._write(self.revision), self.ttl_s)
        except Exception:
            CLUSTER_METRICS.renewal_failed(self.database, "error")
            raise
        if revision is None:
            state = self.read()
            if state.holder == self.node_id and state.successor is None:
                # The key moved, but to this node's own value: a renewal whose reply was
                # lost (a timeout as the quorum came back) landed after all. Nobody wrote
                # since (another writer would be the holder), so this tenure goes on: renew
                # from there (others' watches started at that write, maybe a while ago).
                revision = self.connection.run(self._write(state.revision), self.ttl_s)
            if revision is None:
                CLUSTER_METRICS.renewal_failed(self.database, "lost")
                self.epoch = self.revision = 0
                return False
        self.revision = revision
        self._seen, self._seen_at = LeaseState(self.node_id, revision), time.monotonic()
        self.renewed_at = self._seen_at
        return True

    def release(self, successor: str) -> bool:
        """Give the lease up in a planned hand-over: ``successor`` may take it at once
        (others only after its TTL, in case the successor never does). Compare-and-set on
        the revision held; False when it had moved already. The caller closed the
        database first, so nothing of this tenure is still being appended."""
        if self.epoch == 0:
            return False
        revision = self.connection.run(self._write(self.revision, successor), 10.0)
        self.epoch = self.revision = 0
        self._seen = None
        return revision is not None
