"""Snapshots: an image of the whole state at one offset, so recovery need not replay it all.

A snapshot is ``<data_dir>/snapshots/{offset:020d}.snap``. Byte layout (little-endian)::

    0        8        16                  48       56     60
    +--------+--------+-------------------+--------+------+-------------------+
    | magic  | offset | last_hash         | length | crc  | payload           |
    +--------+--------+-------------------+--------+------+-------------------+
    magic      8 bytes   b"CTSNAP\\x00\\x01"
    offset     u64       the last transaction the state includes
    last_hash  32 bytes  the hash of the record at ``offset`` (GENESIS_HASH for offset 0)
    length     u64       payload length
    crc        u32       zlib.crc32(payload)
    payload              msgpack.packb(state, use_bin_type=True)

A snapshot is *valid* when the header is complete, the magic matches, the offset equals the
file name's, and the payload is exactly ``length`` bytes with a matching crc and decodes.

Writing: the commit log is synced through ``offset`` first (so a snapshot is never ahead of
the log), then the file is written to ``.tmp``, synced, renamed and the directory synced.
The two newest snapshots are kept, so a damaged newest one still leaves a fallback.

Who touches which file (``SnapshotDirectory``; docs/design/file-ownership.md): only the
snapshot writer (the layer's snapshot thread) creates, renames and deletes files here,
and opening removes leftover ``.tmp`` files under the data directory's lock, before that
thread starts. Everyone else only lists and reads, and listing has no side effects. A
reader (a backup) *pins* the snapshots it may read, under the same mutex the writer's
pruning takes, so a snapshot it chose stays on disk until it unpins; pruning skips
pinned files and deletes them at a later write.

Loading: the newest valid snapshot wins; invalid ones are skipped with a warning (older
ones, then a full replay, are the fallback). Recovery then checks that ``last_hash`` is the
``prev_hash`` of the record at ``offset + 1``, which ties the image to this very log.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgpack

from cosmictron.durability.files import write_file_durably
from cosmictron.durability.storage import Storage

_pack_record: Any = None
"""The compiled packer (``_frames.pack_record``: msgpack's bytes, exactly, for the types
a state holds; None for anything else), or None: not built, or ``COSMICTRON_PURE`` set.
A snapshot's state is packed on the snapshot thread holding the GIL, so every reducer
call waits while it runs: 240k rows took ~35 ms with ``msgpack.packb`` and ~15 ms with
this (docs/design/hot-path.md, "Seventh round")."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.durability._frames import pack_record as _pack_record
    except ImportError:  # not built: msgpack packs it
        pass

logger = logging.getLogger(__name__)

SNAPSHOT_MAGIC = b"CTSNAP\x00\x01"
SNAPSHOT_HEADER = struct.Struct("<8sQ32sQI")
SNAPSHOT_SUFFIX = ".snap"
SNAPSHOTS_KEPT = 2


@dataclass(frozen=True)
class Snapshot:
    """The state as of ``offset``; ``last_hash`` is the hash of the record at ``offset``."""

    offset: int
    last_hash: bytes
    state: Any


def snapshot_path(snapshot_dir: str, offset: int) -> str:
    """Return the file name of the snapshot at ``offset``."""
    return os.path.join(snapshot_dir, f"{offset:020d}{SNAPSHOT_SUFFIX}")


def list_snapshots(storage: Storage, snapshot_dir: str) -> list[tuple[int, str]]:
    """Return ``(offset, path)`` of every snapshot file, newest first.

    Listing only reads: a ``.tmp`` may be the writer's snapshot about to be renamed.
    """
    found = []
    for name in storage.list_directory(snapshot_dir):
        stem = name.removesuffix(SNAPSHOT_SUFFIX)
        if name.endswith(SNAPSHOT_SUFFIX) and len(stem) == 20 and stem.isdigit():
            found.append((int(stem), os.path.join(snapshot_dir, name)))
    found.sort(reverse=True)
    return found


def write_snapshot(storage: Storage, snapshot_dir: str, snapshot: Snapshot) -> str:
    """Write ``snapshot`` durably, delete all but the newest two, and return its path.

    For a directory no reader shares (tests, tools); a live database writes through
    ``SnapshotDirectory.write``, which leaves pinned snapshots alone.
    """
    return SnapshotDirectory(storage, snapshot_dir).write(snapshot)


class SnapshotDirectory:
    """The snapshot files of one data directory: one writer, any number of readers.

    The writer (one thread) writes and prunes; readers pin what they read. Pins and
    pruning share one mutex, so a reader never chooses a file pruning is deleting, and
    pruning never deletes a file a reader holds.
    """

    def __init__(self, storage: Storage, path: str) -> None:
        self.storage = storage
        self.path = path
        self._mutex = threading.Lock()
        self._pins: Counter[str] = Counter()

    def remove_leftovers(self) -> None:
        """Delete ``.tmp`` files an interrupted write left; only before the writer starts."""
        for name in self.storage.list_directory(self.path):
            if name.endswith(".tmp"):
                self.storage.unlink(os.path.join(self.path, name))

    def files(self) -> list[tuple[int, str]]:
        """``(offset, path)`` of every snapshot, newest first; no side effects."""
        return list_snapshots(self.storage, self.path)

    def write(self, snapshot: Snapshot) -> str:
        """Write ``snapshot`` durably, then prune all but the newest two and pinned ones."""
        payload = _pack_record(snapshot.state) if _pack_record is not None else None
        if payload is None:  # a value the compiled packer leaves to msgpack
            payload = msgpack.packb(snapshot.state, use_bin_type=True)
        header = SNAPSHOT_HEADER.pack(
            SNAPSHOT_MAGIC, snapshot.offset, snapshot.last_hash, len(payload), zlib.crc32(payload)
        )
        path = snapshot_path(self.path, snapshot.offset)
        write_file_durably(path, [header, payload], self.storage)
        with self._mutex:
            for _, old_path in self.files()[SNAPSHOTS_KEPT:]:
                if not self._pins[old_path]:
                    self.storage.unlink(old_path)
        return path

    def load_newest(self) -> Snapshot | None:
        """The newest valid snapshot, skipping (and logging) damaged ones."""
        return load_newest_snapshot(self.storage, self.path)

    @contextmanager
    def pinned_at_or_before(self, offset: int) -> Iterator[list[tuple[int, str]]]:
        """The snapshots at or before ``offset``, newest first, kept on disk meanwhile."""
        with self._mutex:
            chosen = [(o, path) for o, path in self.files() if o <= offset]
            self._pins.update(path for _, path in chosen)
        try:
            yield chosen
        finally:
            with self._mutex:
                self._pins.subtract(path for _, path in chosen)
                self._pins += Counter()  # drop the zero counts


def read_snapshot(storage: Storage, path: str, offset: int) -> Snapshot:
    """Read and verify one snapshot file.

    Raises:
        ValueError: the file is not a valid snapshot (the reason says why).
    """
    last_hash, payload = _checked_payload(storage.read_file(path), offset)
    try:
        state = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input.
        raise ValueError(f"payload does not decode: {exc}") from None
    return Snapshot(offset, last_hash, state)


def check_snapshot(storage: Storage, path: str, offset: int) -> None:
    """Check a snapshot's header, length and crc without decoding its state.

    Raises:
        ValueError: the file is not a valid snapshot (the reason says why).
    """
    _checked_payload(storage.read_file(path), offset)


def _checked_payload(data: bytes, offset: int) -> tuple[bytes, memoryview]:
    if len(data) < SNAPSHOT_HEADER.size:
        raise ValueError("header is incomplete")
    magic, header_offset, last_hash, length, crc = SNAPSHOT_HEADER.unpack_from(data)
    if magic != SNAPSHOT_MAGIC:
        raise ValueError(f"bad magic {magic!r}")
    if header_offset != offset:
        raise ValueError(f"header says offset {header_offset}, file name says {offset}")
    payload = memoryview(data)[SNAPSHOT_HEADER.size :]
    if len(payload) != length:
        raise ValueError(f"payload is {len(payload)} bytes, header says {length}")
    if zlib.crc32(payload) != crc:
        raise ValueError("crc mismatch")
    return last_hash, payload


def load_newest_snapshot(storage: Storage, snapshot_dir: str) -> Snapshot | None:
    """Return the newest valid snapshot, skipping (and logging) damaged ones."""
    for offset, path in list_snapshots(storage, snapshot_dir):
        try:
            return read_snapshot(storage, path, offset)
        except (ValueError, OSError) as exc:
            logger.warning("skipping damaged snapshot %s: %s", path, exc)
    return None
