"""``PersistenceLayer``: the one object the host talks to for durability.

It owns a data directory (``LOCK``, ``log/``, ``snapshots/``) and ties together the writer
(``commitlog.py``), the fsync policy (``sync.py``), snapshots and recovery. Its contract:

- ``recover()`` is called once, and its records exhausted, before the first ``append``.
- ``append`` is called by one thread at a time (the host's writer lock) and returns the
  new offset. Under ``periodic`` and ``never`` the record is then in the kernel, so a
  killed process loses nothing appended; under ``always`` it waits in memory for the
  group-commit leader, and nobody is told it is durable before the leader synced it.
- After ``wait_durable(offset)`` returns under ``always``, that transaction is replayed
  after any crash, power cuts included. A durable offset implies every lower one.
- After a failed sync, every ``append`` and ``wait_durable`` raises ``DurabilityError``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from cosmictron.durability.anchorer import Anchorer
from cosmictron.durability.commitlog import CommitLog
from cosmictron.durability.config import DurabilityConfig, PersistenceConfig
from cosmictron.durability.durable_point import DurablePoint, ReplicatedDurablePoint, Replicator
from cosmictron.durability.files import ensure_directory
from cosmictron.durability.ledger_state import LEDGER_STATE_KEY, capture_ledger_state
from cosmictron.durability.ledger_thread import LedgerThread
from cosmictron.durability.ledger_writer import LedgerWriter, migrate_legacy_log
from cosmictron.durability.log_archive import archive_below, archive_dir
from cosmictron.durability.recovery import LogTail, Recovery
from cosmictron.durability.segment import create_segment, open_segment_for_append
from cosmictron.durability.snapshot import Snapshot, SnapshotDirectory
from cosmictron.durability.storage import FILE_STORAGE, Storage
from cosmictron.durability.sync import SyncCoordinator
from cosmictron.errors import DurabilityError, InternalError
from cosmictron.ledger.record_format import KEY_REVOKED_KIND, KEY_ROTATED_KIND

logger = logging.getLogger(__name__)

SNAPSHOT_REQUESTS_MAX = 2
"""Snapshot requests waiting for the writer thread; more are skipped, not queued."""


@dataclass(frozen=True)
class PersistenceStatistics:
    """A point-in-time reading for ``/metrics`` and tests."""

    appends: int
    syncs: int
    bytes_written: int
    durable_offset: int
    next_offset: int
    snapshot_count: int
    snapshots_skipped: int
    snapshots_failed: int
    last_sync_latency_s: float
    sync_seconds_total: float
    failed: bool


@dataclass(frozen=True)
class LogCut:
    """The end of the log at one moment: what a consistent online backup copies.

    ``offset`` is the last appended record (0 for none) and ``last_hash`` its hash; that
    record ends at byte ``segment_bytes`` of the segment named by ``segment_base_offset``
    (when ``offset`` is below that base, the segment holds no record yet). Segments are
    append-only and never deleted, so the bytes before the cut never change.
    """

    offset: int
    last_hash: bytes
    segment_base_offset: int
    segment_bytes: int


class PersistenceLayer:
    """The commit log, its fsync policy and snapshots for one data directory.

    Args:
        config: where the data lives.
        durability: how hard to work at keeping it; defaults to the ``production`` profile.
        storage: the disk; the real one (``FileStorage``) unless a test passes a
            ``cosmictron.testing.MemoryStorage`` or ``FaultyStorage``.
        replicator: cluster mode: a record is durable only once this acknowledged it
            too (``durable_point.ReplicatedDurablePoint``); None (one node): local fsync.
        replica: cluster mode: the log only copies the leader's records (a catch-up, a
            follower); the ledger checks them and appends no record of its own.

    Raises:
        DatabaseInUse: another process holds the data directory.
    """

    def __init__(
        self,
        config: PersistenceConfig,
        durability: DurabilityConfig | None = None,
        *,
        storage: Storage = FILE_STORAGE,
        replicator: Replicator | None = None,
        replica: bool = False,
    ) -> None:
        self.replicator = replicator
        """Cluster mode: where records are replicated (``durable_point.py``); None on one node."""
        self.replica = replica
        """Cluster mode: this log is a copy of another node's (``append_replicated``);
        with the ledger on, it checks the copied records and writes none of its own."""
        self.durability = durability if durability is not None else DurabilityConfig.default()
        self.storage = storage
        self.data_dir = os.fspath(config.data_dir)
        self.log_dir = os.path.join(self.data_dir, "log")
        self.snapshot_dir = os.path.join(self.data_dir, "snapshots")
        ensure_directory(self.data_dir, storage)
        self._lock = storage.lock(self.data_dir)
        self.snapshots = SnapshotDirectory(storage, self.snapshot_dir)
        """Snapshot files; readers (backups) pin what they read through it."""
        try:
            ensure_directory(self.log_dir, storage)
            ensure_directory(self.snapshot_dir, storage)
            self.snapshots.remove_leftovers()  # under the lock, before the writer starts
        except BaseException:
            self._lock.release()  # a refused open must not keep the directory locked
            raise
        self._sync = SyncCoordinator(
            self.durability.fsync_policy,
            self.durability.sync_method,
            self.durability.fsync_interval_ms,
            storage,
        )
        self._log = CommitLog(
            self.log_dir,
            self._sync,
            self.durability.segment_bytes_max,
            self.durability.record_bytes_max,
        )
        self._ledger: LedgerWriter | None = None
        if self.durability.signing != "off" and storage is FILE_STORAGE:
            self._ledger = LedgerWriter(self.data_dir, self.durability, replica=replica)
        self._ledger_thread: LedgerThread | None = None
        self.archived_through = 0
        """The last record archived out of ``log/`` this session (0: none)."""
        self._writer_lock: Any = None
        self.commit_refusal: Exception | None = None
        """Set while strict anchoring refuses commits (``anchorer.py``); the host checks
        it before each transaction."""
        self._anchorer: Anchorer | None = None
        self._recovery: Recovery | None = None
        self._durable_point: DurablePoint = self._sync
        self._started = False
        self._closed = False
        self._snapshot_requests: queue.Queue[tuple[int, bytes, Callable[[], Any]] | None] = (
            queue.Queue(SNAPSHOT_REQUESTS_MAX)
        )
        self._snapshot_thread: threading.Thread | None = None
        self._snapshot_count = 0
        self._snapshots_skipped = 0
        self._snapshots_failed = 0

    @classmethod
    def new_legacy(cls, config: PersistenceConfig) -> PersistenceLayer:
        """The pre-0.8 constructor: durability from ``config.enable_wal``.

        ``True`` means ``always``, ``False`` means ``never``, ``None`` the default profile.
        Deprecated: pass a :class:`DurabilityConfig` (see ``docs/migration.md``).
        """
        warnings.warn(
            "PersistenceLayer.new_legacy(config) is deprecated; use "
            "PersistenceLayer(config, DurabilityConfig.from_profile(...)) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        durability = DurabilityConfig.default()
        if config.enable_wal is not None:
            policy = "always" if config.enable_wal else "never"
            durability = DurabilityConfig(**{**vars(durability), "fsync_policy": policy})
        return cls(config, durability)

    def recover(self) -> Recovery:
        """Load the newest valid snapshot and prepare to replay the log after it.

        Exhaust ``records`` before appending: only then is a torn tail cut off and the log
        opened for writing.

        Raises:
            CorruptLog: (while iterating) the log is damaged other than at its tail.
        """
        if self._recovery is not None:
            raise InternalError("recover() was called twice on one PersistenceLayer")
        snapshot = self.snapshots.load_newest()
        self._recovery = Recovery(
            self.storage, self.log_dir, snapshot, self.durability.record_bytes_max, self._start
        )
        return self._recovery

    def _start(self, tail: LogTail) -> None:
        try:
            if tail.path is None:
                fd = create_segment(self.storage, self.log_dir, tail.next_offset)
                segment_bytes = self.storage.size(fd)
                segment_base_offset = tail.next_offset
            else:
                segment_base_offset = int(os.path.basename(tail.path).split(".")[0])
                fd = open_segment_for_append(self.storage, tail.path, tail.valid_bytes, tail.torn)
                # What recovery read may still be only in the page cache.
                self.storage.sync(fd, "fsync")
                segment_bytes = tail.valid_bytes
        except OSError as exc:
            raise DurabilityError(
                f"could not open the commit log in {self.log_dir} for writing ({exc})"
            ) from exc
        self._log.start(fd, segment_bytes, tail.next_offset, tail.last_hash, segment_base_offset)
        if self.replicator is not None:
            # Before the ledger opens: the records it may append on open (a new leader's
            # key, a migration marker) are replicated like any other.
            self.replicator.refuse_commits = self._set_commit_refusal
            self.replicator.start(tail.next_offset - 1, tail.last_hash)
            self._log.on_record = self.replicator.publish
            self._durable_point = ReplicatedDurablePoint(self._sync, self.replicator)
        if self._ledger is not None:
            try:
                self._ledger.open(self._log)
            except BaseException:
                self._log.ledger = None
                self._ledger.close()
                self._ledger = None
                raise
            self._ledger_thread = LedgerThread(
                self._ledger, self._log, self._sync, lambda: self._writer_lock
            )
            self._ledger_thread.start()
        elif self.storage is FILE_STORAGE and not self.replica:
            migrate_legacy_log(self.data_dir, self._log)
        self._started = True
        # Bind the writer's method directly: the hot path skips one Python call.
        self.append = self._log.append  # type: ignore[method-assign]
        self.wait_durable = self._durable_point.wait_durable  # type: ignore[method-assign]
        self._snapshot_thread = threading.Thread(
            target=self._run_snapshots, name="cosmictron-snapshots", daemon=True
        )
        self._snapshot_thread.start()

    def append(self, kind: int, body: Any) -> int:
        """Write one record and return its offset (the previous offset + 1; the first is 1).

        Args:
            kind: ``TX_RECORD_KIND`` for a transaction.
            body: any msgpack-able value.

        Raises:
            DurabilityError: the layer failed, the record is too large, or the write failed.
        """
        if self._closed:
            raise DurabilityError("the persistence layer is closed")
        raise InternalError("append() before recover() finished; exhaust recover().records")

    def append_replicated(self, payload: bytes) -> int:
        """Append a record copied from the replicated log, byte for byte (cluster mode).

        Call it like ``append``: after recovery, one thread at a time. See
        ``CommitLog.append_payload``.

        Raises:
            DurabilityError: the record does not continue this log, or the write failed.
        """
        if not self._started or self._closed:
            raise InternalError("append_replicated() needs a recovered, open layer")
        return self._log.append_payload(payload)

    def wait_durable(self, offset: int) -> None:
        """Block until ``offset`` is durable under the fsync policy.

        Under ``always`` this shares a sync with concurrent callers; under ``periodic`` and
        ``never`` it returns at once.

        Raises:
            DurabilityError: a sync failed, now or earlier.
        """
        self._durable_point.wait_durable(offset)

    def sync_now(self) -> None:
        """Sync everything appended so far, whatever the policy.

        This is one tick of the ``periodic`` thread; simulations call it to tick
        deterministically instead of waiting for the thread.

        Raises:
            DurabilityError: the sync failed, now or earlier.
        """
        self._sync.sync_now()

    @property
    def durable_offset(self) -> int:
        """The highest offset known durable (under ``never``, the highest written;
        in cluster mode, also acknowledged by the replicated log)."""
        return self._durable_point.durable_offset

    @property
    def next_offset(self) -> int:
        """The offset the next ``append`` will return."""
        return self._log.next_offset

    def cut(self) -> LogCut:
        """Where the log ends now: the last offset, its hash, and its segment's byte length.

        The caller must hold the writer lock (no ``append`` may run meanwhile). The bytes
        up to ``segment_bytes`` may still wait in the ``always`` buffer: call
        ``sync_now`` before reading them from the file.
        """
        if not self._started or self._closed:
            raise InternalError("cut() needs a recovered, open layer")
        log = self._log
        return LogCut(
            log.next_offset - 1, log.last_hash, log.segment_base_offset, log.segment_bytes
        )

    @property
    def writer_lock(self) -> Any:
        """The host's writer lock (the one ``append`` is called under), set by the host:
        with it the ledger thread writes a checkpoint when the log is idle."""
        return self._writer_lock

    @writer_lock.setter
    def writer_lock(self, lock: Any) -> None:
        self._writer_lock = lock
        if self._ledger_thread is not None:
            self._ledger_thread.wake()  # records may already wait for a checkpoint

    @property
    def ledger_thread(self) -> LedgerThread | None:
        """The ledger's background thread (None with the ledger off): its counters."""
        return self._ledger_thread

    @property
    def ledger(self) -> LedgerWriter | None:
        """The ledger's write side, when ``signing`` is not ``off`` (else None)."""
        return self._ledger

    def checkpoint_now(self) -> int | None:
        """Append a signed checkpoint now if records came after the last one; its seq.

        The caller holds the writer lock (as for ``append``).
        """
        ledger = self._ledger
        if ledger is None or not self._started or self._closed:
            return None
        if not ledger.needs_checkpoint(self._log.next_offset - 1):
            return None
        self._log.append_checkpoint()
        return ledger.last_checkpoint_seq

    def start_anchoring(self, writer_lock: AbstractContextManager[Any]) -> Anchorer | None:
        """Start RFC 3161 anchoring on its own thread, when TSAs are configured.

        ``writer_lock`` is the lock the caller appends under (the host's). Returns the
        anchorer (None: anchoring is off, or the ledger is).

        Raises:
            ConfigError: the trust root file cannot be read.
        """
        if self._ledger is None or not self.durability.anchor_tsa_urls or self._closed:
            return None
        if self.replica:  # anchor records are the leader's, copied
            return None
        if self._anchorer is None:
            sync = self._sync

            def sync_now() -> int:
                sync.sync_now()
                return sync.synced_offset

            self._anchorer = Anchorer(
                self.durability,
                self._ledger,
                self._log,
                sync_now,
                self.checkpoint_now,
                self._set_commit_refusal,
            )
            self._anchorer.start(writer_lock)
        return self._anchorer

    def _set_commit_refusal(self, refusal: Exception | None) -> None:
        self.commit_refusal = refusal

    @property
    def anchorer(self) -> Anchorer | None:
        """The RFC 3161 anchorer, when anchoring runs (else None)."""
        return self._anchorer

    def rotate_signing_key(self, new_key: Any = None) -> Any:
        """Rotate the ledger's signing key: a record signed by the old and the new key.

        From the rotation record on, only the new key signs; it replaces the old one
        where the old one was kept (the data directory's key file, or
        ``signing_key_path``; a key from ``COSMICTRON_SIGNING_KEY`` must be replaced
        there by the operator). The caller holds the writer lock.

        Args:
            new_key: a ``cosmictron.ledger.SigningKey``; None makes a fresh one.

        Returns:
            The new key's ``VerifierKey``.

        Raises:
            DurabilityError: the ledger is off.
        """
        ledger = self._ledger
        if ledger is None or not self._started or self._closed:
            raise DurabilityError('the ledger is off (signing = "off"): no key to rotate')
        log = self._log
        old, new = ledger.rotation(new_key)
        ledger.rotate(new, log.next_offset)
        body = [log.last_time_us, old.fingerprint, new.verifier.to_text()]
        # A checkpoint due now waits for the next record: made inside this append, it
        # would be signed by the old key, whose range the rotation record ends.
        ledger.checkpointing = True
        try:
            log.append(KEY_ROTATED_KIND, body, [old, new])
        finally:
            ledger.checkpointing = False
        ledger.rotated(new)
        if log.event_key is not None:
            log.event_key = new
            log.key_fp = new.fingerprint
        return new.verifier

    def revoke_signing_key(self, key_fingerprint: bytes) -> Any:
        """Revoke a key the log still counts as valid: a record signed by the current key.

        From the revocation record on, the revoked key signs nothing: ``verify`` refuses
        a record or checkpoint it signs after it (``key_out_of_range``). The caller holds
        the writer lock.

        Args:
            key_fingerprint: the key's fingerprint (``VerifierKey.fingerprint``).

        Returns:
            The revoked key's ``VerifierKey``.

        Raises:
            DurabilityError: the ledger is off.
            InvalidRequest: the key is the current signing key, unknown or not active.
        """
        ledger = self._ledger
        if ledger is None or not self._started or self._closed:
            raise DurabilityError('the ledger is off (signing = "off"): no key to revoke')
        log = self._log
        revoked = ledger.revocation(key_fingerprint, log.next_offset)
        assert ledger.key is not None
        log.append(KEY_REVOKED_KIND, [log.last_time_us, key_fingerprint], [ledger.key])
        return revoked

    @property
    def last_hash(self) -> bytes:
        """The hash of the last record, the next record's ``prev_hash``."""
        return self._log.last_hash

    def request_snapshot(self, build_state: Callable[[], Any]) -> bool:
        """Snapshot the state as of the last appended offset, in the background.

        Args:
            build_state: returns the msgpack-able state as of the last appended offset;
                it runs on the snapshot thread, so it must only read immutable copies.

        Returns:
            ``False`` if the request was skipped because earlier ones are still pending.
        """
        if not self._started or self._closed:
            raise InternalError("request_snapshot() needs a recovered, open layer")
        ledger = self._ledger
        capture = None if ledger is None else capture_ledger_state(ledger, self._log)
        if capture is not None:  # what a node joining from it continues from
            build_tables = build_state

            def build_state() -> Any:
                return {**build_tables(), LEDGER_STATE_KEY: capture()}

        request = (self._log.next_offset - 1, self._log.last_hash, build_state)
        try:
            self._snapshot_requests.put_nowait(request)
        except queue.Full:
            self._snapshots_skipped += 1
            return False
        return True

    def wait_snapshots(self) -> None:
        """Block until every requested snapshot is written (or has failed and been logged)."""
        if self._snapshot_thread is not None:
            self._snapshot_requests.join()

    def _run_snapshots(self) -> None:
        while True:
            request = self._snapshot_requests.get()
            try:
                if request is None:
                    return
                offset, last_hash, build_state = request
                state = build_state()
                self._sync.sync_now()  # Never let a snapshot be ahead of the durable log.
                self.snapshots.write(Snapshot(offset, last_hash, state))
                self._snapshot_count += 1
                self._archive_below(offset)
            except Exception:
                self._snapshots_failed += 1
                logger.exception("writing the snapshot at offset %s failed", request and request[0])
            finally:
                self._snapshot_requests.task_done()

    def _archive_below(self, snapshot_offset: int) -> None:
        """With ``log_retention = "archive"``, move the segments below the snapshot out
        of ``log/`` (``log_archive.py``); a failure is logged, the segments stay."""
        ledger = self._ledger
        if self.durability.log_retention != "archive" or ledger is None:
            return
        try:
            through = archive_below(
                self.data_dir,
                snapshot_offset,
                ledger,
                archive_dir(self.data_dir, self.durability.log_archive_dir),
            )
        except Exception:
            logger.exception("archiving log segments below offset %d failed", snapshot_offset)
            return
        if through:
            self.archived_through = through

    def statistics(self) -> PersistenceStatistics:
        """Return counters for this session (since the layer was opened)."""
        return PersistenceStatistics(
            appends=self._log.append_count,
            syncs=self._sync.sync_count,
            bytes_written=self._log.bytes_written,
            durable_offset=self._durable_point.durable_offset,
            next_offset=self._log.next_offset,
            snapshot_count=self._snapshot_count,
            snapshots_skipped=self._snapshots_skipped,
            snapshots_failed=self._snapshots_failed,
            last_sync_latency_s=self._sync.last_sync_latency_s,
            sync_seconds_total=self._sync.sync_seconds_total,
            failed=self._sync.failure is not None,
        )

    def close(self) -> None:
        """Finish pending snapshots, sync, stop threads and release the lock; idempotent.

        Raises:
            DurabilityError: the final sync failed (everything is released regardless).
        """
        if self._closed:
            return
        self._closed = True
        try:
            # The anchorer first: it appends anchor records and queues their side-file
            # entries; then the ledger thread (before the final checkpoint: one writer),
            # so the write_side below writes both side files' last entries itself.
            if self._anchorer is not None:
                self._anchorer.stop()
            if self._ledger_thread is not None:
                self._ledger_thread.stop()
            if self._snapshot_thread is not None:
                self._snapshot_requests.put(None)
                self._snapshot_thread.join()
                self._snapshot_thread = None
            self._sync.stop()
            ledger = self._ledger
            if (
                ledger is not None
                and self._started
                and self._sync.failure is None
                and ledger.needs_checkpoint(self._log.next_offset - 1)
            ):
                self._log.append_checkpoint()
            if self._started and self._sync.failure is None:
                self._sync.sync_now()
                if ledger is not None:
                    ledger.write_side(self._sync.synced_offset)
            if self.replicator is not None and self._started:
                self._settle_replicated()
        finally:
            if self._ledger is not None:
                self._log.ledger = None
                self._ledger.close()
            if self.replicator is not None:
                self.replicator.close()
            self.append = self._append_after_close  # type: ignore[method-assign]
            try:
                self._log.close()
            finally:
                self._lock.release()  # even when closing the segment failed

    def _settle_replicated(self) -> None:
        """Wait for the replicated log to acknowledge the last record (a clean close's
        checkpoint): left unacknowledged, the local log would end past the stream and
        the node would set it aside as diverged when it next leads. Not acknowledged in
        time, or refused (another node leads): exactly that happens, and nothing else."""
        replicator = self.replicator
        assert replicator is not None
        try:
            replicator.wait_acked(self._log.next_offset - 1)
        except Exception as exc:  # closing anyway: the next catch-up sorts it out
            logger.info("closing with records the replicated log did not acknowledge: %s", exc)

    def _append_after_close(self, kind: int, body: Any) -> int:
        raise DurabilityError("the persistence layer is closed")

    def __enter__(self) -> PersistenceLayer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
