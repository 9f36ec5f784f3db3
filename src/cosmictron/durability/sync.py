"""When the commit log is synced, and how callers wait for it (DESIGN.md §4).

Policies:

- ``always``: :meth:`SyncCoordinator.wait_durable` returns only after a sync that covers
  the offset. Group commit: the first waiter that finds no sync running becomes the
  *leader*, writes the frames appended so far (``flush``: the commit log buffers them
  under this policy) in one write and syncs them in one go, and publishes the new
  durable offset. Every other waiter parks on a lock of its own; the leader hands the
  token straight to one that is still waiting, which leads the next sync, and wakes
  the first of those its sync covered, each of which wakes the next (a relay: at most
  one of them waits for the GIL at a time). So N concurrent callers share far fewer
  than N syncs, each caller is woken once, and nobody waits on a timer. (A shared
  ``Condition`` woke every waiter after each sync, to re-take one lock and re-check
  under the GIL; half of them only to park again. With 16 callers that cost about a
  third of the CPU per transaction.)
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
from _thread import LockType
from _thread import allocate_lock as _allocate_lock
from collections import deque
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
        self.on_sync: Callable[[int], None] | None = None
        """Called with the synced offset after each sync (the ledger thread's wake-up: its
        side-file entries wait for their records to be durable)."""
        self._lock = threading.Lock()
        """Guards the token and the queues below; never held across a write or sync."""
        self._token_held = False
        self._waiters: list[tuple[int, LockType]] = []
        """``(offset, parked lock)`` of each ``always`` caller waiting for a sync."""
        self._relay: deque[LockType] = deque()
        """Parked locks of covered callers not yet woken (``_wake_next``)."""
        self._token_queue: deque[LockType] = deque()
        """Parked locks of ``exclusive`` callers waiting for the token."""
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
        lock = self._lock
        lock.acquire()
        if offset <= self.synced_offset:  # a sync covered it while we took the lock
            lock.release()
            return
        if self._token_held:
            parked = _allocate_lock()
            parked.acquire()
            self._waiters.append((offset, parked))
            lock.release()
            parked.acquire()  # released once: covered, failed, or handed the token
            self._wake_next()
            if self.failure is not None:
                raise self.failure
            if offset <= self.synced_offset:
                return
            # Handed the token: this caller leads the next sync.
        else:
            self._token_held = True
            lock.release()
        try:
            if self.failure is not None:
                raise self.failure
            self._sync_locked()
        finally:
            self._release_token()

    def sync_now(self) -> None:
        """Sync everything written so far, whatever the policy (close, snapshots)."""
        with self.exclusive():
            if self.written_offset > self.synced_offset:
                self._sync_locked()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the sync token: no sync runs and ``fd`` may be swapped inside."""
        self._take_token()
        try:
            if self.failure is not None:
                raise self.failure
            yield
        finally:
            self._release_token()

    def _take_token(self) -> None:
        """Wait for the sync token (ahead of callers waiting to lead a sync)."""
        with self._lock:
            if not self._token_held:
                self._token_held = True
                return
            parked = _allocate_lock()
            parked.acquire()
            self._token_queue.append(parked)
        parked.acquire()  # released only when the token is handed to us

    def _release_token(self) -> None:
        """Give up the sync token: wake the callers the last sync covered, one parked
        lock each, and hand the token straight to one that still waits, if any.

        Handing it on (instead of waking every waiter to compete for it, as a
        ``Condition.notify_all`` would) means a sync wakes only the callers it made
        durable plus the next leader: no thundering herd on a shared lock, and no
        caller re-checks and re-parks under the GIL. ``exclusive`` callers (rotation,
        snapshots, close, the periodic tick) get the token first, so they cannot starve
        under a stream of commits. After a failure every waiter is woken to raise it.
        """
        with self._lock:
            waiters = self._waiters
            heir = self._token_queue.popleft() if self._token_queue else None
            if self.failure is not None:
                woken = [parked for _, parked in waiters]
                self._waiters = []
            else:
                synced = self.synced_offset
                woken = [parked for waited, parked in waiters if waited <= synced]
                if len(woken) == len(waiters):
                    self._waiters = []
                else:
                    remaining = [waiter for waiter in waiters if waiter[0] > synced]
                    if heir is None:
                        heir = remaining.pop(0)[1]
                    self._waiters = remaining
            self._token_held = heir is not None
        if heir is not None:
            heir.release()  # first: the next sync starts while the others return
        if woken:
            self._relay.extend(woken)
            self._wake_next()

    def _wake_next(self) -> None:
        """Wake one caller a sync covered; each woken caller wakes the next (a relay).

        Waking all of them at once made up to 15 threads runnable on a 2-core machine
        while one held the GIL: each preempted the holder only to block on the GIL again,
        about three more context switches per transaction with 16 callers (measured:
        5.3 switches per transaction, kernel time as large as the Python). Woken one by
        one, at most one of them waits for the GIL at a time. Every woken caller calls
        this before anything else, so the relay never stops half way, and ``deque``'s
        ``popleft`` is atomic: each parked lock is released exactly once.
        """
        try:
            self._relay.popleft().release()
        except IndexError:
            pass

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
            raise self.failure from exc  # the token's holder wakes every waiter
        self.last_sync_latency_s = time.monotonic() - started
        self.sync_seconds_total += self.last_sync_latency_s
        self.sync_count += 1
        if offset > self.synced_offset:
            self.synced_offset = offset
        on_sync = self.on_sync
        if on_sync is not None:
            on_sync(offset)

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
