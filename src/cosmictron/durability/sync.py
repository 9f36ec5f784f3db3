"""When the commit log is synced, and how callers wait for it (DESIGN.md §4).

Policies:

- ``always``: :meth:`SyncCoordinator.wait_durable` returns only after a sync that covers
  the offset. Group commit: the first waiter that finds no sync running becomes the
  *leader*, writes the frames appended so far (``flush``: the commit log buffers them
  under this policy) and syncs them in one go, publishes the new durable offset and
  wakes everyone; waiters whose offset it covered return, the rest elect the next leader. So N
  concurrent callers share far fewer than N syncs, and nobody waits on a timer.
- ``periodic``: a background thread syncs every ``fsync_interval_ms`` when something new
  was written; ``wait_durable`` returns at once.
- ``never``: nothing syncs until close; ``wait_durable`` returns at once.

Whoever syncs (a leader, the periodic thread, segment rotation, a snapshot, close) first
takes the one *sync token*, so exactly one sync runs at a time and the file descriptor
cannot change under it.

A sync that fails makes the coordinator failed for good: after a failed fsync the kernel
may have dropped the dirty pages and a retry would report success for lost data
("fsyncgate"), so we never retry. Every later append and wait raises ``DurabilityError``.

Invariant: ``durable_offset`` only grows, and every offset at or below it is durable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cosmictron.durability.storage import FILE_STORAGE, Storage
from cosmictron.errors import DurabilityError, InternalError


def _nothing_to_flush() -> None:
    """The default ``flush``: every policy but ``always`` writes in ``append``."""


class SyncCoordinator:
    """Group commit and the periodic sync thread for one commit log.

    The writer publishes progress by assigning ``written_offset`` after each write (a
    plain attribute store, so the append path takes no lock) and swaps ``fd`` only while
    holding the sync token (:meth:`exclusive`). ``fd`` is a handle of ``storage``.
    """

    def __init__(
        self,
        fsync_policy: str,
        sync_method: str,
        fsync_interval_ms: int,
        storage: Storage = FILE_STORAGE,
    ) -> None:
        self.storage = storage
        self.fsync_policy = fsync_policy
        self.sync_method = sync_method
        self.fsync_interval_s = fsync_interval_ms / 1000
        self.fd = -1
        self.written_offset = 0
        self.synced_offset = 0
        self.failure: DurabilityError | None = None
        self.sync_count = 0
        self.last_sync_latency_s = 0.0
        self.sync_seconds_total = 0.0
        self.flush: Callable[[], None] = _nothing_to_flush
        self._condition = threading.Condition()
        self._syncing = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, fd: int, offset: int) -> None:
        """Begin coordinating ``fd``, whose records up to ``offset`` are already durable."""
        self.fd = fd
        self.written_offset = self.synced_offset = offset
        if self.fsync_policy == "periodic":
            self._thread = threading.Thread(
                target=self._run_periodic, name="cosmictron-periodic-sync", daemon=True
            )
            self._thread.start()

    @property
    def durable_offset(self) -> int:
        """The highest offset known durable; under ``never``, the highest written."""
        if self.fsync_policy == "never":
            return self.written_offset
        return self.synced_offset

    def check_usable(self) -> None:
        """Raise the permanent failure, if a sync ever failed."""
        if self.failure is not None:
            raise self.failure

    def wait_durable(self, offset: int) -> None:
        """Block until ``offset`` is durable under the policy (see the module docstring).

        Raises:
            DurabilityError: a sync failed, now or earlier.
        """
        if self.failure is not None:
            raise self.failure
        if self.fsync_policy != "always" or offset <= self.synced_offset:
            return
        if offset > self.written_offset:
            raise InternalError(
                f"wait_durable({offset}) for an offset not yet appended "
                f"(last written: {self.written_offset})"
            )
        with self._condition:
            while True:
                if self.failure is not None:
                    raise self.failure
                if offset <= self.synced_offset:
                    return
                if self._syncing:
                    self._condition.wait()
                    continue
                self._syncing = True
                self._condition.release()
                try:
                    self._sync_locked()
                finally:
                    self._condition.acquire()
                    self._syncing = False
                    self._condition.notify_all()

    def sync_now(self) -> None:
        """Sync everything written so far, whatever the policy (close, snapshots)."""
        with self.exclusive():
            if self.written_offset > self.synced_offset:
                self._sync_locked()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the sync token: no sync runs and ``fd`` may be swapped inside."""
        with self._condition:
            while self._syncing:
                self._condition.wait()
            if self.failure is not None:
                raise self.failure
            self._syncing = True
        try:
            yield
        finally:
            with self._condition:
                self._syncing = False
                self._condition.notify_all()

    def sync_file(self, fd: int, offset: int) -> None:
        """Sync ``fd``, which holds records up to ``offset``; call holding the token."""
        started = time.monotonic()
        try:
            self.storage.sync(fd, self.sync_method)
        except OSError as exc:
            self.failure = DurabilityError(
                f"{self.sync_method} of the commit log failed ({exc}); the database refuses "
                "further writes because the kernel may have dropped unsynced data. Restart it "
                "to recover from the log on disk."
            )
            with self._condition:
                self._condition.notify_all()
            raise self.failure from exc
        self.last_sync_latency_s = time.monotonic() - started
        self.sync_seconds_total += self.last_sync_latency_s
        self.sync_count += 1
        if offset > self.synced_offset:
            self.synced_offset = offset

    def _sync_locked(self) -> None:
        # Read the target before flushing: everything up to it is then written to this fd
        # (earlier segments were synced when rotated), so the sync covers it.
        target = self.written_offset
        self.flush()
        self.sync_file(self.fd, target)

    def _run_periodic(self) -> None:
        while not self._stopping.wait(self.fsync_interval_s):
            if self.written_offset > self.synced_offset:
                try:
                    self.sync_now()
                except DurabilityError:
                    return

    def stop(self) -> None:
        """Stop the periodic thread; idempotent."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
