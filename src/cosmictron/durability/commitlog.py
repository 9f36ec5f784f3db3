"""The commit-log writer: appends framed, hash-chained records to the last segment.

``append`` is the hot path (called under the host's writer lock for every transaction), so
it is a handful of C calls: the packer (``_frames.pack_record`` when built, else msgpack),
the crc32 and SHA-256 (``_frames.seal``, else ``zlib`` and ``hashlib``), ``struct.pack``
and ``Storage.writev_at`` (``FileStorage``: a copy into the mapped zeros allocated ahead
under ``never`` and ``periodic`` on Linux, else ``os.pwritev``).

Where the bytes go depends on the fsync policy:

- ``periodic`` and ``never``: the write goes to the kernel at once (one positional
  write after the last frame), so a killed process loses nothing it appended; only a
  power cut can lose unsynced records, which the policy bounds. A failed write (a full
  disk) cuts the segment back and raises ``DurabilityError``; the log stays usable.
- ``always``: frames wait in a user-space buffer that the group-commit leader writes and
  syncs in one go (``flush_pending``). No caller is told its record is durable before
  that, so a crash loses only unacknowledged records. Writing in the leader matters for
  speed: an ``append`` that wrote to the kernel while the leader's ``fdatasync`` ran
  would wait for it (pages under writeback are locked), and with it every caller queued
  on the writer lock, so syncs and writes took turns instead of overlapping. A write that
  fails in the leader fails the log for good, like a failed sync: the records after the
  failure are already applied in memory, and only a restart (recovery from disk) gives a
  state that matches the log again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import msgpack

from cosmictron.durability.ledger_writer import PREHASH_RECORDS
from cosmictron.durability.record import (
    FORMAT_VERSION,
    FRAME_HEADER,
    FRAME_HEADER_BYTES,
    RECORD_KINDS,
    frame_crc,
)
from cosmictron.durability.segment import create_segment
from cosmictron.durability.storage import Storage
from cosmictron.durability.sync import SyncCoordinator
from cosmictron.errors import DurabilityError, InternalError
from cosmictron.ledger.record_format import (
    CHECKPOINT_KIND,
    HASH_ALGORITHM,
    KEY_FP,
    SIGNATURE,
    signing_message,
)

if TYPE_CHECKING:
    from cosmictron.durability.ledger_writer import LedgerWriter
    from cosmictron.ledger.signing import SigningKey

logger = logging.getLogger(__name__)

PREALLOCATE_BYTES = 1 << 20
"""How far ahead of the last frame a segment is filled with zeros (capped by its size).

Writing a frame into bytes that already exist, instead of extending the file, spares each
``fdatasync`` the file-size update: about a quarter of its cost on ext4 here (133 -> 100 µs).
SQLite's WAL gets the same effect by reusing its file.
"""

_crc32 = zlib.crc32
_sha256 = hashlib.sha256
_pack_header = FRAME_HEADER.pack
_frame_crc = frame_crc
_pack_durable = struct.Struct("<Q").pack
"""``frame_crc`` inlined on the ``append`` path: the crc runs over the payload, then these
8 bytes of the watermark."""
_time_ns = time.time_ns

_seal: Callable[[bytes], tuple[int, bytes]] | None = None
"""The compiled ``(crc32, sha256 digest)`` of a payload (``_frames.seal``), or None: not
built, or ``COSMICTRON_PURE`` set; then ``append`` calls ``zlib`` and ``hashlib``."""
_pack_record: Callable[[Any], bytes | None] | None = None
"""The compiled record packer (``_frames.pack_record``: msgpack's bytes for the types a
record holds, None for any other), or None; then ``append`` packs with msgpack alone."""
_frame_record: Callable[[Any, int], tuple[bytes, bytes] | None] | None = None
"""The compiled whole frame of an unsigned record and its payload's digest
(``_frames.frame_record``: ``pack_record``, ``seal`` and the header in one call), or None."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.durability._frames import frame_record as _frame_record
        from cosmictron.durability._frames import pack_record as _pack_record
        from cosmictron.durability._frames import seal as _seal
    except ImportError:  # not built: the library calls
        pass


class CommitLog:
    """Appends records to the segments in ``log_dir``.

    Args:
        log_dir: the directory holding the segments.
        sync: the coordinator that owns the handle's syncs; its ``storage`` holds the log.
        segment_bytes_max: a segment is closed once it reaches this size.
        record_bytes_max: a larger record is refused.
    """

    def __init__(
        self, log_dir: str, sync: SyncCoordinator, segment_bytes_max: int, record_bytes_max: int
    ) -> None:
        self.log_dir = log_dir
        self.sync = sync
        self.storage: Storage = sync.storage
        self.segment_bytes_max = segment_bytes_max
        self.record_bytes_max = record_bytes_max
        self.fd = -1
        self.next_offset = 1
        self.last_hash = b""
        self.segment_bytes = 0
        self.bytes_written = 0
        self.first_offset = 1
        self.segment_base_offset = 1
        self.buffered = sync.fsync_policy == "always"
        self._frame_whole = None if self.buffered else _frame_record
        """``_frames.frame_record`` when ``append`` frames an unsigned record in one
        compiled call; None under ``always`` (its leader frames the batch when it writes
        it) or when the extension is not built."""
        self._pack = msgpack.Packer(use_bin_type=True).pack
        """One packer for the log's life (``append`` runs under the host's writer lock):
        ``msgpack.packb`` builds a new ``Packer`` per call, which cost more than packing a
        one-row transaction. A failed ``pack`` resets its buffer, so it stays usable."""
        self.origin = ""
        """The ledger's fields of every record (``ledger/record_format.py``): the log's
        origin, the last commit time (times never go backwards), and, when every record
        is signed, the key and its fingerprint."""
        self.last_time_us = 0
        self.key_fp: bytes | None = None
        self.event_key: SigningKey | None = None
        self.ledger: LedgerWriter | None = None
        self.on_record: Callable[[int, bytes], None] | None = None
        """Cluster mode: called with each appended record's offset and payload, in order,
        under the writer lock (``durable_point.Replicator.publish``); None on one node."""
        self._pending: list[tuple[bytes, int]] = []
        self._pending_lock = threading.Lock()
        self._flushed_bytes = 0
        self._allocated_bytes = 0
        if self.buffered:
            sync.flush = self.flush_pending

    def start(
        self,
        fd: int,
        segment_bytes: int,
        next_offset: int,
        last_hash: bytes,
        segment_base_offset: int,
    ) -> None:
        """Continue the log after recovery: ``fd`` is the last segment, ending at a valid frame.

        ``segment_base_offset`` names that segment (its first record's offset), so a
        backup can tell which file the last appended record is in.
        """
        self.fd = fd
        self.segment_base_offset = segment_base_offset
        self.segment_bytes = self._flushed_bytes = segment_bytes
        self._allocated_bytes = self.storage.size(fd)
        self.next_offset = self.first_offset = next_offset
        self.last_hash = last_hash
        self.sync.start(fd, next_offset - 1)

    @property
    def append_count(self) -> int:
        """Records appended since :meth:`start`."""
        return self.next_offset - self.first_offset

    def append(self, kind: int, body: Any, signers: Sequence[SigningKey] | None = None) -> int:
        """Write one record to the kernel and return its offset.

        The record is not durable yet; ``wait_durable`` waits for that. ``signers``
        sign this record whatever the signing mode (key events); with the ledger on, a
        checkpoint record may follow it (``ledger_writer.py``).

        Raises:
            DurabilityError: a sync failed earlier, the record is larger than
                ``record_bytes_max``, or the write failed (nothing of it remains).
        """
        sync = self.sync
        if sync.failure is not None:
            raise sync.failure
        if kind not in RECORD_KINDS:  # replay would refuse it: never write it
            raise InternalError(f"record kind {kind} is not one of {sorted(RECORD_KINDS)}")
        if self.segment_bytes >= self.segment_bytes_max:
            self._rotate()
        offset = self.next_offset
        now = _time_ns() // 1000
        if now < self.last_time_us:
            now = self.last_time_us
        fields = [
            FORMAT_VERSION,
            kind,
            offset,
            self.last_hash,
            body,
            self.origin,
            now,
            HASH_ALGORITHM,
            self.key_fp,
            None,
        ]
        frame_whole = self._frame_whole
        framed = (
            frame_whole(fields, sync.synced_offset)
            if frame_whole is not None and signers is None and self.event_key is None
            else None
        )
        payload: bytes | None
        if framed is not None:  # the common record: packed, hashed and framed in one call
            frame, digest = framed
            written = len(frame)
            if written - FRAME_HEADER_BYTES > self.record_bytes_max:
                self._refuse_size(offset, written - FRAME_HEADER_BYTES)
            payload = None  # sliced from the frame only if someone below needs it
            position = self._flushed_bytes
            try:
                if position + written <= self._allocated_bytes:
                    done = self.storage.writev_at(self.fd, position, (frame,))
                else:
                    done = self._write_at_end((frame,), written)
            except OSError as exc:
                self._undo_write(offset, exc)
            if done != written:
                self._undo_write(offset, OSError(f"short write of {done} bytes"))
            self._flushed_bytes = position + written
        else:
            payload, digest, written = self._append_general(fields, offset, signers)
        self.last_hash = digest
        self.next_offset = offset + 1
        self.segment_bytes += written
        self.bytes_written += written
        sync.written_offset = offset
        self.last_time_us = now
        on_record = self.on_record
        ledger = self.ledger
        if on_record is None and ledger is None:
            return offset
        if payload is None:  # framed in one call: the payload is the frame's tail
            payload = frame[FRAME_HEADER_BYTES:]
        if on_record is not None:
            on_record(offset, payload)
        if ledger is not None:
            # The ledger's share of every append (ledger_writer.py): the payload, whose
            # leaf hash the next checkpoint computes with the others in one batch, and
            # whether a checkpoint is due.
            pending = ledger.pending
            pending.append(payload)
            if not len(pending) % PREHASH_RECORDS and ledger.wake is not None:
                ledger.wake()  # the ledger thread hashes them ahead (LedgerWriter.prehash)
            if not ledger.since_seq:  # the oldest record after the last checkpoint
                ledger.since_seq = offset
                ledger.since_us = now
                if ledger.wake is not None:
                    ledger.wake()  # the ledger thread sleeps until this one's checkpoint is due
            if (offset >= ledger.due_seq or now >= ledger.due_us) and not ledger.checkpointing:
                self.append_checkpoint()
        return offset

    def _append_general(
        self, fields: list[Any], offset: int, signers: Sequence[SigningKey] | None
    ) -> tuple[bytes, bytes, int]:
        """``append``'s write of a record ``frame_record`` does not frame (signed, buffered
        under ``always``, not built, or left to msgpack): (payload, digest, bytes written)."""
        payload = _pack_record(fields) if _pack_record is not None else None
        if payload is None:
            payload = self._pack(fields)
        if signers is not None or self.event_key is not None:
            payload = self._sign(fields, payload, signers)
        length = len(payload)
        if length > self.record_bytes_max:
            self._refuse_size(offset, length)
        if _seal is not None:
            crc, digest = _seal(payload)
        else:
            crc = _crc32(payload)
            digest = _sha256(payload).digest()
        if self.buffered:
            # The header is made at flush time, when the leader knows what is synced.
            with self._pending_lock:
                self._pending.append((payload, crc))
            return payload, digest, length + FRAME_HEADER_BYTES
        durable = self.sync.synced_offset
        header = _pack_header(length, _crc32(_pack_durable(durable), crc), durable)
        parts = (header, payload)
        try:
            position = self._flushed_bytes
            if position + length + FRAME_HEADER_BYTES <= self._allocated_bytes:
                written = self.storage.writev_at(self.fd, position, parts)
            else:
                written = self._write_at_end(parts, length + FRAME_HEADER_BYTES)
        except OSError as exc:
            self._undo_write(offset, exc)
        if written != length + FRAME_HEADER_BYTES:
            self._undo_write(offset, OSError(f"short write of {written} bytes"))
        self._flushed_bytes += written
        return payload, digest, written

    def _refuse_size(self, offset: int, length: int) -> NoReturn:
        raise DurabilityError(
            f"record at offset {offset} is {length} bytes, more than record_bytes_max "
            f"({self.record_bytes_max}); split the transaction or raise the limit"
        )

    def append_payload(self, payload: bytes) -> int:
        """Append a record another node wrote, unchanged (cluster mode: catching up).

        A follower or a new leader copies the replicated log's records into its own log
        byte for byte, so every node's log verifies and chains like the leader's. The
        record must continue this log: its offset the next one, its ``prev_hash`` the
        last record's hash. Slow path: the record is decoded to check that.

        Raises:
            DurabilityError: the record does not continue this log, fails the ledger's
                check (the ledger on: ``LedgerWriter.copied``), or the write failed.
        """
        if self.sync.failure is not None:
            raise self.sync.failure
        fields = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        kind, offset, prev_hash, record_time_us = fields[1], fields[2], fields[3], fields[6]
        if offset != self.next_offset or prev_hash != self.last_hash:
            raise DurabilityError(
                f"the replicated record at offset {offset} does not continue the local log "
                f"(next offset {self.next_offset}); the node's log has diverged"
            )
        if kind not in RECORD_KINDS:
            raise DurabilityError(f"the replicated record at offset {offset} has kind {kind}")
        ledger = self.ledger
        if ledger is not None:
            # Checked (signature, checkpoint root) before it is written: a replica stores
            # only what its own verify accepts. Its checkpoint's side-file entry is queued.
            ledger.copied(offset, payload)
        if self.segment_bytes >= self.segment_bytes_max:
            self._rotate()
        length = len(payload)
        crc = _crc32(payload)
        if self.buffered:
            with self._pending_lock:
                self._pending.append((payload, crc))
        else:
            durable = self.sync.synced_offset
            header = _pack_header(length, _frame_crc(crc, durable), durable)
            try:
                written = self._write_at_end((header, payload), length + FRAME_HEADER_BYTES)
            except OSError as exc:
                self._undo_write(offset, exc)
            if written != length + FRAME_HEADER_BYTES:
                self._undo_write(offset, OSError(f"short write of {written} bytes"))
            self._flushed_bytes += written
        written = length + FRAME_HEADER_BYTES
        self.last_hash = _sha256(payload).digest()
        self.next_offset = offset + 1
        self.segment_bytes += written
        self.bytes_written += written
        self.sync.written_offset = offset
        if isinstance(record_time_us, int) and record_time_us > self.last_time_us:
            self.last_time_us = record_time_us
        if ledger is not None and kind == CHECKPOINT_KIND:
            ledger.write_side(self.sync.synced_offset)
        return offset

    def _sign(
        self, fields: list[Any], payload: bytes, signers: Sequence[SigningKey] | None
    ) -> bytes:
        """Sign a record: one signature, or ``[old, new]`` for a rotation's two keys."""
        keys = list(signers) if signers is not None else [self.event_key]
        first = keys[0]
        assert first is not None
        if fields[KEY_FP] != first.fingerprint:
            fields[KEY_FP] = first.fingerprint
            payload = signing_message(fields)
        signatures = [key.sign(payload) for key in keys if key is not None]
        fields[SIGNATURE] = signatures[0] if len(signatures) == 1 else signatures
        return self._pack(fields)

    def append_checkpoint(self) -> None:
        """Append a signed checkpoint over every record so far (the ledger is on).

        A failure is logged, never raised: the record before it is already written, and
        its caller must hear that it committed. The next append tries again.
        """
        ledger = self.ledger
        assert ledger is not None
        ledger.checkpointing = True
        try:
            body = ledger.checkpoint_body(self.last_time_us)
            seq = self.append(CHECKPOINT_KIND, body)
            ledger.checkpoint_written(seq, body)
            ledger.write_side(self.sync.synced_offset)
        except Exception:
            logger.exception("writing a ledger checkpoint failed; the next record retries")
        finally:
            ledger.checkpointing = False

    def flush_pending(self) -> None:
        """Write the buffered frames to the segment (``always``; the sync leader calls this).

        Raises:
            DurabilityError: the write failed; the log is failed for good (see above).
        """
        with self._pending_lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        durable = self.sync.synced_offset
        parts = []
        for payload, crc in pending:
            parts.append(_pack_header(len(payload), _frame_crc(crc, durable), durable))
            parts.append(payload)
        data = b"".join(parts)
        try:
            written = self._write_at_end((data,), len(data))
            while written < len(data):
                position = self._flushed_bytes + written
                written += self.storage.writev_at(self.fd, position, (data[written:],))
        except OSError as exc:
            try:
                self.storage.truncate(self.fd, self._flushed_bytes)
                self._allocated_bytes = self._flushed_bytes
            except OSError:
                pass  # recovery cuts a torn tail anyway
            self.sync.failure = DurabilityError(
                f"writing the commit log failed ({exc}); the database refuses further writes. "
                "Free disk space and restart it to recover from the log on disk."
            )
            raise self.sync.failure from exc
        self._flushed_bytes += written

    def _write_at_end(self, parts: tuple[bytes, ...], length: int) -> int:
        """Write ``parts`` after the last frame, growing the zero-filled allocation first."""
        position = self._flushed_bytes
        if position + length > self._allocated_bytes:
            target = max(
                position + length,
                min(self._allocated_bytes + PREALLOCATE_BYTES, self.segment_bytes_max),
            )
            size = target - self._allocated_bytes
            allocate = None if self.buffered else getattr(self.storage, "allocate", None)
            if allocate is not None:  # written into through a map (storage.py)
                allocate(self.fd, self._allocated_bytes, size)
            else:
                self.storage.writev_at(self.fd, self._allocated_bytes, (bytes(size),))
            self._allocated_bytes = target
        return self.storage.writev_at(self.fd, position, parts)

    def _undo_write(self, offset: int, cause: OSError) -> None:
        """Cut off a partly written frame, durably, then report the failed write.

        The cut is synced before the caller hears of the failure: otherwise a crash could
        drop the cut but keep the partial frame, and if the bytes it lacks were zeros the
        allocation ahead supplies them, so a record the caller saw fail would come back.
        (The crash simulation found this: seed 2977.)
        """
        try:
            self.storage.truncate(self.fd, self._flushed_bytes)
            self._allocated_bytes = self._flushed_bytes
            with self.sync.exclusive():
                self.sync.sync_file(self.fd, offset - 1)
        except OSError as truncate_error:
            self.sync.failure = DurabilityError(
                f"writing offset {offset} failed ({cause}) and the partial record could not "
                f"be removed ({truncate_error}); restart the database to recover"
            )
            raise self.sync.failure from cause
        raise DurabilityError(
            f"writing the record at offset {offset} failed ({cause}); nothing was written, "
            "free disk space and retry"
        ) from cause

    def _rotate(self) -> None:
        """Seal the current segment (synced, so only the last can be torn) and begin a new one."""
        old_fd = self.fd
        with self.sync.exclusive():
            self.flush_pending()
            # A sealed segment ends at its last frame: only the last one holds zeros.
            self.storage.truncate(old_fd, self._flushed_bytes)
            self.sync.sync_file(old_fd, self.next_offset - 1)
            try:
                new_fd = create_segment(self.storage, self.log_dir, self.next_offset)
            except OSError as exc:
                raise DurabilityError(
                    f"could not create a new log segment in {self.log_dir} ({exc}); "
                    "free disk space and retry"
                ) from exc
            self.fd = self.sync.fd = new_fd
            self.segment_base_offset = self.next_offset
        self.storage.close(old_fd)
        self.segment_bytes = self._flushed_bytes = self._allocated_bytes = self.storage.size(new_fd)

    def close(self) -> None:
        """Trim the unused allocation and close; the caller syncs first.

        The trim need not be synced: zeros after the last frame read as free space.
        """
        if self.fd >= 0:
            try:
                self.storage.truncate(self.fd, self._flushed_bytes)
            except OSError:
                pass  # recovery treats the zeros as free space anyway
            self.storage.close(self.fd)
            self.fd = -1
