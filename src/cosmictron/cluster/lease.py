"""``Lease``: who leads a database, as a key in a JetStream KV bucket, renewed by compare-and-set.

One key per database in the bucket ``COSMICTRON_LEASES`` (R3). Its value names the holder
(``{"node": ..., "database": ...}``); its *revision* (the KV's sequence, which only grows) at
the write that took it is the holder's **epoch**. Every write is a compare-and-set on the
revision last seen (``update(key, value, last=revision)``): two nodes racing for one lease
cannot both win, and
a holder whose renewal fails knows at once that someone else moved the key.

Time: the holder renews every ``renew_s``; a contender takes the lease over only after it
watched the same revision unchanged for ``ttl_s`` on its *own* monotonic clock (no clock
agreement between machines is needed). The lease alone is not the safety net: a holder
that has stopped (SIGSTOP, a long GC pause) may still believe it leads for a moment after
its lease passed. What makes that harmless is the log's fencing: the new leader appends an
epoch-start record before serving, and the old leader's next append is refused
(``Nats-Expected-Last-Sequence``, ``jetstream_log.py``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import stream_name

LEASE_BUCKET = "COSMICTRON_LEASES"
"""The KV bucket of leases, one key per database."""

LEASE_TTL_S = 3.0
"""A lease whose revision did not change for this long may be taken over."""

LEASE_RENEW_S = 1.0
"""How often the holder renews (well inside the TTL: two renewals may fail)."""


@dataclass(frozen=True)
class LeaseState:
    """The key as last read: its holder (None: nobody) and revision (the epoch; 0: no key)."""

    holder: str | None
    revision: int


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
    ) -> None:
        self.connection = connection
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

    def _value(self) -> bytes:
        return json.dumps({"node": self.node_id, "database": self.database}).encode()

    async def _bucket(self) -> Any:
        from nats.js.api import KeyValueConfig, StorageType
        from nats.js.errors import BucketNotFoundError

        js = self.connection.js
        try:
            return await js.key_value(LEASE_BUCKET)
        except BucketNotFoundError:
            return await js.create_key_value(
                KeyValueConfig(
                    bucket=LEASE_BUCKET,
                    history=1,
                    replicas=self.replicas,
                    storage=StorageType.FILE,
                )
            )

    async def _read(self) -> LeaseState:
        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        kv = await self._bucket()
        try:
            entry = await kv.get(self.key)
        except (KeyNotFoundError, KeyDeletedError):
            return LeaseState(None, 0)
        holder = json.loads(entry.value or b"{}").get("node")
        return LeaseState(holder, int(entry.revision or 0))

    def read(self) -> LeaseState:
        """The lease as JetStream has it now."""
        return self.connection.run(self._read(), 10.0)

    async def _write(self, last: int) -> int | None:
        from nats.js.errors import APIError, KeyWrongLastSequenceError

        kv = await self._bucket()
        try:
            if last == 0:
                return int(await kv.create(self.key, self._value()))
            return int(await kv.update(self.key, self._value(), last=last))
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
        if self._seen is None or state != self._seen:
            self._seen, self._seen_at = state, now
        free = state.revision == 0 or state.holder == self.node_id
        expired = now - self._seen_at >= self.ttl_s
        if not (free or expired):
            return False
        revision = self.connection.run(self._write(state.revision), 10.0)
        if revision is None:
            return False
        self.epoch = self.revision = revision
        self._seen, self._seen_at = LeaseState(self.node_id, revision), time.monotonic()
        return True

    def renew(self) -> bool:
        """Renew the lease by compare-and-set on the revision held.

        Returns False (and forgets the epoch) when the key moved: another node took it.
        """
        if self.epoch == 0:
            return False
        revision = self.connection.run(self._write(self.revision), 10.0)
        if revision is None:
            self.epoch = self.revision = 0
            return False
        self.revision = revision
        self._seen, self._seen_at = LeaseState(self.node_id, revision), time.monotonic()
        return True
