"""The ledger's background thread: side-file writes off the commit path, idle checkpoints.

Two jobs that must not run on the thread that commits (``docs/design/ledger.md``,
"Checkpoint cost"):

- **The side file** (``<data_dir>/ledger/checkpoints``): each checkpoint's entry is
  appended and fsynced once the log is synced past its record. That fsync cost the
  commit thread about 3 ms every 1000 records (a tenth of the ledger's whole budget); the
  entry is now queued by the commit thread (no I/O) and written here. What is durable
  does not change: the entry was already written only after its record was synced (so
  a crash could always lose the newest entries, and the log holds the checkpoint), and
  a clean close writes whatever is queued before it returns.
- **Idle checkpoints**: a checkpoint is due ``checkpoint_interval_ms`` after the last
  one, but the commit path only notices at its next record. When records are pending
  and no record came by the due time, this thread appends the checkpoint itself, under
  the host's writer lock (``PersistenceLayer.writer_lock``, which the host sets), waits
  until it is durable and writes its side-file entry. Without a writer lock (the
  persistence layer used alone) it writes no records, only the side file.

The thread sleeps until it has work, never on a short timer (an idle database used to
wake it every millisecond once its checkpoint was due with nothing new to sign: about 2%
of a core each). What wakes it: the commit log, at the first record after a checkpoint
(then it sleeps until that checkpoint falls due) and every ``PREHASH_RECORDS`` records;
``queue_side``, when entries are queued; the sync coordinator, after a sync while
side-file entries wait for one (``on_sync``); the host, when it sets the writer lock;
and ``stop``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cosmictron.durability.commitlog import CommitLog
from cosmictron.durability.ledger_writer import LedgerWriter
from cosmictron.durability.sync import SyncCoordinator

logger = logging.getLogger(__name__)

LOCK_WAIT_S = 0.1
"""How long the thread waits for the writer lock before it looks at ``stop`` again: a
close never waits on a thread that waits on a lock the closer holds."""

DUE_SLACK_S = 0.001
"""Slept past a checkpoint's due time, so the clock has passed it when the thread looks."""

RETRY_S = 0.1
"""How long the thread waits before it tries an overdue idle checkpoint again, when the
last try wrote none (the writer lock was busy, or the append failed and was logged)."""


class LedgerThread:
    """Runs the side-file writes and idle checkpoints of one data directory's ledger.

    Args:
        ledger: the write side (its ``side`` queue and checkpoint schedule).
        log: the commit log, to append an idle checkpoint.
        sync: the log's sync coordinator, to make that checkpoint durable.
        writer_lock: returns the host's writer lock, or None while there is none.
        name: the thread's name.
    """

    def __init__(
        self,
        ledger: LedgerWriter,
        log: CommitLog,
        sync: SyncCoordinator,
        writer_lock: Callable[[], Any],
        name: str = "cosmictron-ledger",
    ) -> None:
        self._ledger = ledger
        self._log = log
        self._sync = sync
        self._writer_lock = writer_lock
        self._wake = threading.Event()
        self._stopping = False
        self.idle_checkpoints = 0
        """Checkpoints this thread wrote because the log was idle (tests, metrics)."""
        self.wakeups = 0
        """Times the thread woke up to look at the ledger: an idle one should not (tests)."""
        self._retry_at = 0.0
        """``time.monotonic()`` before which an overdue checkpoint is not tried again."""
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        ledger.wake = self._wake.set
        sync.on_sync = self._synced

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish the current step and stop; the caller then writes what is left."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self._ledger.wake = None
        self._sync.on_sync = None

    def wake(self) -> None:
        """Have the thread look at the ledger again (its writer lock was just set, say)."""
        self._wake.set()

    def _synced(self, offset: int) -> None:
        """After each sync: wake the thread if side-file entries were waiting for one."""
        ledger = self._ledger
        if ledger.side_pending or ledger.side_anchors_pending:
            self._wake.set()

    def _timeout(self) -> float | None:
        """Seconds to sleep: until the pending records' checkpoint is due, or None (until
        woken) when there is nothing to sign or no way to sign it here."""
        ledger = self._ledger
        if self._sync.failure is not None:
            return None  # the log is failed for good: nothing more to sign
        now = time.monotonic()
        if now < self._retry_at:
            return self._retry_at - now
        if not ledger.needs_checkpoint(self._log.next_offset - 1) or self._writer_lock() is None:
            return None
        return max(0.0, (ledger.due_us - time.time_ns() // 1000) / 1e6) + DUE_SLACK_S

    def _loop(self) -> None:
        ledger = self._ledger
        while not self._stopping:
            self._wake.wait(self._timeout())
            # Cleared before the ledger is read: a wake set from here on is not lost.
            self._wake.clear()
            self.wakeups += 1
            if self._stopping:
                return
            try:
                ledger.prehash()
                ledger.queue_side(self._sync.synced_offset)
                ledger.flush_side()
                self._checkpoint_if_idle()
            except Exception:
                # A full disk, say: logged, retried after RETRY_S; commits go on.
                self._retry_at = time.monotonic() + RETRY_S
                logger.exception("the ledger's background step failed; it retries")

    def _checkpoint_if_idle(self) -> None:
        ledger = self._ledger
        log = self._log
        if not ledger.needs_checkpoint(log.next_offset - 1):
            return
        if time.time_ns() // 1000 < ledger.due_us:
            return
        lock = self._writer_lock()
        if lock is None:
            return
        if not lock.acquire(timeout=LOCK_WAIT_S):
            self._retry_at = time.monotonic() + RETRY_S
            return
        try:
            if self._stopping or self._sync.failure is not None:
                return
            last = log.next_offset - 1
            if not ledger.needs_checkpoint(last) or time.time_ns() // 1000 < ledger.due_us:
                return  # a commit wrote it meanwhile
            log.append_checkpoint()  # logs a failure, never raises
            seq = ledger.last_checkpoint_seq
        finally:
            lock.release()
        if seq <= last:
            self._retry_at = time.monotonic() + RETRY_S
        else:
            self.idle_checkpoints += 1
            self._sync.wait_durable(seq)
            ledger.queue_side(self._sync.synced_offset)
            ledger.flush_side()


__all__ = ["LedgerThread"]
