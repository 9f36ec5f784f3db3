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

**With the ledger on** (``signing`` not ``off``) the records are evidence, so the stream
is trimmed only below what the leader has archived (:func:`ledger_trim_point`: records
``1..A`` moved to ``log_archive_dir`` with ``ledger/archived.json``, ``log_retention =
"archive"``), at ``min(S, A + 1)``: never below a record that exists nowhere else, and
the archived range stays provable on the leader (its tree keeps their hashes). A
snapshot then carries the ledger's state at ``S`` (``durability/ledger_state.py``: record
``S``'s hash and time, the tree's compact range, the key ranges), and only such a
snapshot is shipped. A node joins from it only when the stream was trimmed (its first
sequence past 1; otherwise it copies the whole history and can prove every record):
:func:`seed_from_snapshot` writes that state as its ``ledger/archived.json`` with
``joined_at = S``, so its ledger checks every copied record as ``verify`` would, its
tree (the compact range plus the leaves after ``S``) has the leader's root at every
size from ``S`` on, and it proves inclusion of records after ``S`` (and consistency
between sizes from ``S`` on); a proof that needs a hash below ``S`` is a
``ProofUnavailable`` (404). docs/design/cluster.md, "Snapshots and trimming".
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cosmictron import limits
from cosmictron.cluster.connection import (
    NatsConnection,
    found_or_made,
    once_heard,
    stream_subjects,
)
from cosmictron.cluster.jetstream_log import stream_name
from cosmictron.durability.files import ensure_directory, write_file_durably
from cosmictron.durability.ledger_state import ledger_state
from cosmictron.durability.ledger_writer import LEDGER_DIR, TREE_FILE
from cosmictron.durability.segment import create_segment, list_segments
from cosmictron.durability.snapshot import (
    SNAPSHOT_HEADER,
    check_snapshot,
    list_snapshots,
    read_snapshot,
    snapshot_path,
)
from cosmictron.durability.storage import FILE_STORAGE
from cosmictron.errors import ClusterUnavailable, DurabilityError
from cosmictron.ledger.archived import read_archived, write_archived

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
    return await found_or_made(
        js,
        lambda: js.object_store(SNAPSHOT_BUCKET),
        lambda: js.create_object_store(
            SNAPSHOT_BUCKET,
            ObjectStoreConfig(bucket=SNAPSHOT_BUCKET, replicas=replicas, storage=StorageType.FILE),
        ),
        BucketNotFoundError,
        f"OBJ_{SNAPSHOT_BUCKET}",
    )


async def _shipped(connection: NatsConnection, database: str, replicas: int) -> list[int]:
    """The offsets of ``database``'s snapshots in the store, newest first: listed from
    the store stream's state (``stream_subjects``: nats-py's ``ObjectStore.list`` can
    miss objects under load), a deleted one left out."""
    from nats.js.errors import ObjectNotFoundError

    store = await _store(connection, replicas)
    prefix = object_prefix(database)
    offsets = []
    meta = f"$O.{SNAPSHOT_BUCKET}.M."
    for encoded in await stream_subjects(connection.js, f"OBJ_{SNAPSHOT_BUCKET}", meta):
        name = base64.urlsafe_b64decode(encoded).decode()
        if not (name.startswith(prefix) and name[len(prefix) :].isdigit()):
            continue
        try:
            await store.get_info(name)  # a deleted object keeps its meta message
        except ObjectNotFoundError:
            continue
        offsets.append(int(name[len(prefix) :]))
    return sorted(offsets, reverse=True)


async def _read_object(js: Any, store: Any, name: str) -> bytes:
    """The bytes of object ``name``, read chunk by chunk from the store stream's leader.

    Not nats-py's ``ObjectStore.get``: it makes an ordered consumer per object, a
    request of its own that can go unanswered on a loaded cluster (the seed then
    failed for a whole round). A stream message get (``next_by_subj`` from the last
    chunk's sequence on) needs no consumer and is answered by the stream's leader, so
    a chunk acknowledged before the object's meta was written is always found. The
    chunks' count, size and SHA-256 are checked against the meta.

    Raises:
        DurabilityError: the chunks do not add up to the object the meta describes.
    """
    info = await store.get_info(name)
    subject = f"$O.{SNAPSHOT_BUCKET}.C.{info.nuid}"
    stream = f"OBJ_{SNAPSHOT_BUCKET}"
    digest = hashlib.sha256()
    parts: list[bytes] = []
    sequence = 1
    for _ in range(int(info.chunks or 0)):
        msg = await js.get_msg(stream, seq=sequence, subject=subject, next=True)
        chunk = bytes(msg.data or b"")
        digest.update(chunk)
        parts.append(chunk)
        sequence = int(msg.seq) + 1
    data = b"".join(parts)
    expected = base64.urlsafe_b64decode(str(info.digest or "").removeprefix("SHA-256="))
    if len(data) != int(info.size or 0) or digest.digest() != expected:
        raise DurabilityError(
            f"the object {name!r} in {SNAPSHOT_BUCKET!r} does not match its meta "
            f"({len(data)} bytes read, {info.size} described, digest "
            f"{'matches' if digest.digest() == expected else 'differs'})"
        )
    return data


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
    ledger_on: bool = False,
) -> int | None:
    """Ship the newest local snapshot if it is acknowledged and newer than the shipped
    ones; its offset (None: nothing shipped). Older shipped ones past ``SHIPPED_KEPT`` go.
    With the ledger on, only a snapshot that carries the ledger's state is shipped (a
    node joining from one without it could not check or prove what follows).
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
    if ledger_on and ledger_state(read_snapshot(FILE_STORAGE, path, offset).state) is None:
        logger.warning("cluster: the snapshot of %r at %d has no ledger state; not shipped",
                       database, offset)  # fmt: skip
        return None

    async def put() -> None:
        store = await _store(connection, replicas)
        # A store just made may not be heard on this connection's server yet (CI: the
        # first chunk's publish found no responder): tried again while nobody answers.
        # nats-py's put publishes the chunks, then the meta; a refusal after the first
        # chunk (interest lost mid-put) would leave that attempt's chunks unreferenced.
        await once_heard(lambda: store.put(_object_name(database, offset), data))
        for old in ([offset, *shipped])[SHIPPED_KEPT:]:
            name = _object_name(database, old)
            await once_heard(lambda: store.delete(name))  # noqa: B023 (awaited at once)

    connection.run(put(), TIMEOUT_S)
    return offset


def trim_stream(connection: NatsConnection, database: str, through: int) -> int:
    """Purge the stream's records below ``through`` (a shipped snapshot's offset, which
    stays: see the module doc); the stream's first sequence after. The caller decides
    ``through`` (module doc: with the ledger on, :func:`ledger_trim_point`)."""

    async def purge() -> int:
        name = stream_name(database)
        await connection.js.purge_stream(name, seq=through)
        info = await connection.js.stream_info(name)
        return int(info.state.first_seq)

    return connection.run(purge(), TIMEOUT_S)


def ledger_trim_point(data_dir: str | os.PathLike[str], offset: int, stream_first: int) -> int:
    """Where the stream may be trimmed (records below it purged) with the ledger on, after
    shipping a snapshot at ``offset``; 0: not at all.

    ``min(offset, A + 1)`` with ``A`` the last record this node archived
    (``ledger/archived.json``), so the stream keeps every record not archived. A node
    that joined from a snapshot at ``J`` never held records ``1..J``: while the stream
    still starts at or below ``J``, records there are in no archive of this node, and it
    trims nothing.
    """
    archived = read_archived(os.fspath(data_dir))
    if archived is None:
        return 0
    if archived.joined_at and stream_first <= archived.joined_at:
        return 0
    through = min(offset, archived.through + 1)
    return through if through > stream_first else 0


def seed_from_snapshot(
    connection: NatsConnection,
    data_dir: str | os.PathLike[str],
    database: str,
    *,
    replicas: int = 3,
    ledger_on: bool = False,
) -> int:
    """Start an empty local log from the newest shipped snapshot; its offset (0: none).

    The snapshot file goes to ``snapshots/`` as the leader wrote it and an empty segment
    starts the log at the next offset, so recovery loads it and the catch-up copies the
    stream from there on. With the ledger on, only when the stream was trimmed (else the
    node copies the whole history): the snapshot's ledger state becomes the node's
    ``ledger/archived.json``, with ``joined_at`` set (module doc).

    Raises:
        ClusterUnavailable: the object store could not be read.
        DurabilityError: with the ledger on, the snapshot carries no ledger state.
    """
    root = os.fspath(data_dir)
    log_dir = os.path.join(root, "log")
    if os.path.isdir(log_dir) and list_segments(FILE_STORAGE, log_dir):
        return 0  # not empty: this node has a log to continue
    if ledger_on and stream_bounds(connection, database)[0] <= 1:
        return 0  # the stream holds every record: copy them all, prove them all

    async def newest() -> tuple[int, bytes] | None:
        store = await _store(connection, replicas)
        for offset in await _shipped(connection, database, replicas):
            return offset, await _read_object(connection.js, store, _object_name(database, offset))
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
    if ledger_on:
        _seed_ledger(root, database, offset, read_snapshot(FILE_STORAGE, path, offset).state)
    else:
        check_snapshot(FILE_STORAGE, path, offset)
    FILE_STORAGE.close(create_segment(FILE_STORAGE, log_dir, offset + 1))
    return offset


def _seed_ledger(root: str, database: str, offset: int, state: Any) -> None:
    """Write the snapshot's ledger state as the node's ``ledger/archived.json``."""
    try:
        archived = ledger_state(state)
    except ValueError as exc:
        archived, problem = None, f"its ledger state does not parse ({exc})"
    else:
        problem = "it carries no ledger state (written with the ledger off)"
        if archived is not None and archived.through != offset:
            problem = f"its ledger state is at offset {archived.through}, not at its own"
            archived = None
    if archived is None:
        raise DurabilityError(
            f"cannot join {database!r} from the shipped snapshot at {offset}: {problem}; "
            "the stream was trimmed below it, so copy a node's whole data directory instead"
        )
    ledger_dir = os.path.join(root, LEDGER_DIR)
    os.makedirs(ledger_dir, mode=0o700, exist_ok=True)
    tree = os.path.join(ledger_dir, TREE_FILE)
    if os.path.exists(tree):
        os.unlink(tree)  # derived data of a log that is gone: the tree starts at the base
    joined = dataclasses.replace(archived, joined_at=offset, joined_frontier=archived.frontier)
    write_archived(root, joined)


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
        """Snapshot ``database`` now, ship it and trim the stream below it (with the
        ledger on, only below what this node archived: :func:`ledger_trim_point`); the
        shipped offset (None: nothing new to ship)."""
        with self._lock:
            if self.take is not None:
                self.take(database)
            offset = ship_snapshot(
                self.connection, database, data_dir, replicas=self.replicas, ledger_on=ledger_on
            )
            if offset is None:
                return None
            self._shipped[database] = offset
            through = offset
            if ledger_on:
                first, _ = stream_bounds(self.connection, database)
                through = ledger_trim_point(data_dir, offset, first)
            if through:
                first = trim_stream(self.connection, database, through)
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
