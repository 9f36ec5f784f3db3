"""Snapshots in the JetStream object store: new replicas start from one; the stream is trimmed.

A database's leader ships its newest local snapshot (the ``snapshots/<offset>.snap`` file,
unchanged: it carries its offset, the hash of the record at that offset and a crc) to the
object store bucket ``COSMICTRON_SNAPSHOTS`` (R3) as ``<database key>/<offset>``, keeping the
newest two. It ships one every ``limits.cluster_snapshot_records`` records of the stream
(periodically, from the lease thread) and whenever asked (:meth:`SnapshotShipper.ship_now`).
A snapshot is shipped only once the stream holds the record it ends at with the same hash
(``snapshot_is_acknowledged``): a snapshot over a record JetStream never acknowledged would
hand a new replica a state no committed history leads to.

A node opening a database it never hosted (an empty local log) starts from the newest
shipped snapshot (:func:`seed_from_snapshot`: the file goes to ``snapshots/``, an empty
segment starts the log right after it) and copies the stream from the snapshot's offset
on (``catchup.py``), instead of from record 1.

**Trimming** (:func:`trim_stream`): once a snapshot at offset ``S`` is shipped, the stream's
records below ``S`` are purged: every node that needs them starts from the snapshot. ``S``
itself stays: a node whose log ends there (one just seeded from that snapshot) checks its
last record against the stream's record ``S`` before copying what follows (``catchup.py``).
Never below what the ledger needs: with the ledger on (``signing`` not ``off``) the stream
is not trimmed at all, because a node's ledger builds its Merkle tree from the records
themselves (a node joining from a snapshot could not prove or verify the records below it),
so every record stays in the stream and every node copies the whole history (the snapshot
then only speeds nothing up; docs/design/cluster.md, "Snapshots and trimming").
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cosmictron import limits
from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import stream_name
from cosmictron.durability.files import ensure_directory, write_file_durably
from cosmictron.durability.segment import create_segment, list_segments
from cosmictron.durability.snapshot import (
    SNAPSHOT_HEADER,
    check_snapshot,
    list_snapshots,
    snapshot_path,
)
from cosmictron.durability.storage import FILE_STORAGE
from cosmictron.errors import ClusterUnavailable

logger = logging.getLogger(__name__)

SNAPSHOT_BUCKET = "COSMICTRON_SNAPSHOTS"
"""The object store bucket of shipped snapshots."""

SHIPPED_KEPT = 2
"""Shipped snapshots kept per database (a damaged newest one leaves a fallback)."""

TIMEOUT_S = 60.0
"""How long one upload or download may take before it counts as unavailable."""


def object_prefix(database: str) -> str:
    """The object-name prefix of ``database``'s snapshots (its stream's suffix)."""
    return stream_name(database).removeprefix("COSMICTRON_LOG_") + "/"


def _object_name(database: str, offset: int) -> str:
    return f"{object_prefix(database)}{offset:020d}"


async def _store(connection: NatsConnection, replicas: int) -> Any:
    from nats.js.api import ObjectStoreConfig, StorageType
    from nats.js.errors import BucketNotFoundError

    js = connection.js
    try:
        return await js.object_store(SNAPSHOT_BUCKET)
    except BucketNotFoundError:
        return await js.create_object_store(
            SNAPSHOT_BUCKET,
            ObjectStoreConfig(bucket=SNAPSHOT_BUCKET, replicas=replicas, storage=StorageType.FILE),
        )


async def _shipped(connection: NatsConnection, database: str, replicas: int) -> list[int]:
    from nats.js.errors import NotFoundError

    store = await _store(connection, replicas)
    try:
        infos = await store.list(ignore_deletes=True)
    except NotFoundError:
        return []
    prefix = object_prefix(database)
    offsets = [
        int(info.name[len(prefix) :])
        for info in infos
        if info.name.startswith(prefix) and info.name[len(prefix) :].isdigit()
    ]
    return sorted(offsets, reverse=True)


def shipped_offsets(connection: NatsConnection, database: str, *, replicas: int = 3) -> list[int]:
    """The offsets of ``database``'s shipped snapshots, newest first."""
    return connection.run(_shipped(connection, database, replicas), TIMEOUT_S)


def stream_bounds(connection: NatsConnection, database: str) -> tuple[int, int]:
    """``(first, last)`` sequence of the database's stream; ``(0, 0)`` when it has none.

    After a trim, ``first`` is past 1: the records before it are in a snapshot only.
    """

    async def read() -> tuple[int, int]:
        from nats.js.errors import NotFoundError

        try:
            info = await connection.js.stream_info(stream_name(database))
        except NotFoundError:
            return 0, 0
        return int(info.state.first_seq), int(info.state.last_seq)

    return connection.run(read(), TIMEOUT_S)


def snapshot_is_acknowledged(
    connection: NatsConnection, database: str, offset: int, last_hash: bytes
) -> bool:
    """Whether the stream holds the record at ``offset`` and it hashes to ``last_hash``."""

    async def read() -> bytes | None:
        from nats.js.errors import NotFoundError

        try:
            msg = await connection.js.get_msg(stream_name(database), offset, direct=True)
        except NotFoundError:
            return None
        return bytes(msg.data or b"")

    payload = connection.run(read(), TIMEOUT_S)
    return payload is not None and hashlib.sha256(payload).digest() == last_hash


def ship_snapshot(
    connection: NatsConnection,
    database: str,
    data_dir: str | os.PathLike[str],
    *,
    replicas: int = 3,
) -> int | None:
    """Ship the newest local snapshot if it is acknowledged and newer than the shipped
    ones; its offset (None: nothing shipped). Older shipped ones past ``SHIPPED_KEPT`` go.
    """
    local = list_snapshots(FILE_STORAGE, os.path.join(os.fspath(data_dir), "snapshots"))
    if not local:
        return None
    offset, path = local[0]
    data = Path(path).read_bytes()
    check_snapshot(FILE_STORAGE, path, offset)
    last_hash = SNAPSHOT_HEADER.unpack_from(data)[2]
    shipped = shipped_offsets(connection, database, replicas=replicas)
    if shipped and shipped[0] >= offset:
        return None
    if not snapshot_is_acknowledged(connection, database, offset, last_hash):
        return None  # the stream does not hold its last record (yet, or ever)

    async def put() -> None:
        store = await _store(connection, replicas)
        await store.put(_object_name(database, offset), data)
        for old in ([offset, *shipped])[SHIPPED_KEPT:]:
            await store.delete(_object_name(database, old))

    connection.run(put(), TIMEOUT_S)
    return offset


def trim_stream(connection: NatsConnection, database: str, through: int) -> int:
    """Purge the stream's records below ``through`` (a shipped snapshot's offset, which
    stays: see the module doc); the stream's first sequence after. The caller decides
    ``through`` (module doc: never with the ledger on)."""

    async def purge() -> int:
        name = stream_name(database)
        await connection.js.purge_stream(name, seq=through)
        info = await connection.js.stream_info(name)
        return int(info.state.first_seq)

    return connection.run(purge(), TIMEOUT_S)


def seed_from_snapshot(
    connection: NatsConnection,
    data_dir: str | os.PathLike[str],
    database: str,
    *,
    replicas: int = 3,
) -> int:
    """Start an empty local log from the newest shipped snapshot; its offset (0: none).

    The snapshot file goes to ``snapshots/`` as the leader wrote it and an empty segment
    starts the log at the next offset, so recovery loads it and the catch-up copies the
    stream from there on.

    Raises:
        ClusterUnavailable: the object store could not be read.
    """
    root = os.fspath(data_dir)
    log_dir = os.path.join(root, "log")
    if os.path.isdir(log_dir) and list_segments(FILE_STORAGE, log_dir):
        return 0  # not empty: this node has a log to continue

    async def newest() -> tuple[int, bytes] | None:
        store = await _store(connection, replicas)
        for offset in await _shipped(connection, database, replicas):
            result = await store.get(_object_name(database, offset))
            return offset, bytes(result.data or b"")
        return None

    try:
        found = connection.run(newest(), TIMEOUT_S)
    except Exception as exc:
        raise ClusterUnavailable(
            f"could not read the snapshots of {database!r} from {SNAPSHOT_BUCKET!r} ({exc!r})"
        ) from exc
    if found is None:
        return 0
    offset, data = found
    snapshot_dir = os.path.join(root, "snapshots")
    ensure_directory(snapshot_dir)
    ensure_directory(log_dir)
    path = snapshot_path(snapshot_dir, offset)
    write_file_durably(path, [data])
    check_snapshot(FILE_STORAGE, path, offset)
    FILE_STORAGE.close(create_segment(FILE_STORAGE, log_dir, offset + 1))
    return offset


def delete_snapshots(connection: NatsConnection, database: str, *, replicas: int = 3) -> int:
    """Delete every shipped snapshot of ``database``; how many there were."""

    async def delete() -> int:
        store = await _store(connection, replicas)
        offsets = await _shipped(connection, database, replicas)
        for offset in offsets:
            await store.delete(_object_name(database, offset))
        return len(offsets)

    return connection.run(delete(), TIMEOUT_S)


class SnapshotShipper:
    """The leader's side: ship a snapshot every ``every_records`` records, then trim.

    Args:
        connection: the node's NATS connection.
        replicas: copies of the object store bucket.
        every_records: stream records between shipped snapshots.
    """

    def __init__(
        self,
        connection: NatsConnection,
        *,
        replicas: int = 3,
        every_records: int | None = None,
    ) -> None:
        self.connection = connection
        self.replicas = replicas
        self.every_records = (
            every_records if every_records is not None else limits.cluster_snapshot_records
        )
        self.take: Callable[[str], None] | None = None
        """Writes a local snapshot of a database this node leads, now (the registry sets
        it: ``Database.snapshot``); None: only snapshots written anyway are shipped."""
        self._shipped: dict[str, int] = {}
        self._busy: set[str] = set()
        """Databases whose snapshot is being written or shipped now."""
        self._lock = threading.Lock()

    def ship_now(self, database: str, data_dir: Path, ledger_on: bool) -> int | None:
        """Snapshot ``database`` now, ship it and trim the stream below it (not with the
        ledger on); the shipped offset (None: nothing new to ship)."""
        with self._lock:
            if self.take is not None:
                self.take(database)
            offset = ship_snapshot(self.connection, database, data_dir, replicas=self.replicas)
            if offset is None:
                return None
            self._shipped[database] = offset
            if not ledger_on:
                first = trim_stream(self.connection, database, offset)
                logger.info("cluster: shipped %r at %d; its stream starts at %d", database,
                            offset, first)  # fmt: skip
            return offset

    def tick(self, database: str, data_dir: Path, ledger_on: bool, last: int) -> None:
        """Ship when the stream (ending at ``last``) grew ``every_records`` past the
        last shipped snapshot. Called by the lease thread for each database it leads;
        the snapshot and upload run on a thread of their own (a large state takes
        seconds to write, and the lease thread must renew leases meanwhile)."""
        if self.every_records <= 0 or database in self._busy:
            return
        shipped = self._shipped.get(database)
        if shipped is None:
            offsets = shipped_offsets(self.connection, database, replicas=self.replicas)
            shipped = self._shipped[database] = offsets[0] if offsets else 0
        if last - shipped < self.every_records:
            return
        self._busy.add(database)

        def ship() -> None:
            try:
                self.ship_now(database, data_dir, ledger_on)
            except Exception:
                logger.exception("cluster: shipping a snapshot of %r failed", database)
            finally:
                self._busy.discard(database)

        threading.Thread(target=ship, name=f"cosmictron-ship-{database}", daemon=True).start()

    def forget(self, database: str) -> None:
        """This node no longer leads ``database``."""
        self._shipped.pop(database, None)
