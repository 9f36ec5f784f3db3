"""The relay: delivers the calls databases recorded with ``ctx.call_remote``.

One ``RemoteRelay`` serves a set of named databases (a server's registry, or the
databases an embedded program opened): each is a source (its outbox is drained) and a
target (the name ``ctx.call_remote`` uses). A single thread, woken by every commit that
records a call and once when a database is added (to drain what a crash left), takes
each source's pending entries in sequence order and hands each to the ``Transport``:

- ``LocalTransport`` applies it in a database of the same relay (single-node mode);
- a cluster transport publishes it to the target's inbox stream (docs/design/cluster.md).

A source's calls to one target are delivered strictly in sequence order: while one is
failing (waiting for its next attempt), the later ones to that target wait too. That
order is what lets the target keep one high-water mark per source (``remote.py``).

The relay waits for the source's record to be durable before delivering it (a call must
not take effect when the transaction that recorded it could still be lost), and settles
each batch of deliveries in one source transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cosmictron import limits
from cosmictron.errors import CosmictronError, NotFound
from cosmictron.host import remote
from cosmictron.host.core import DatabaseCore
from cosmictron.host.remote_book import OutboxEntry
from cosmictron.values import Identity

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox entry on its way: who sent it and what it asks."""

    source: str
    """The source database's identity (hex): the key of the target's inbox mark."""
    sender: Identity
    """Whom the call runs as in the target: the source database's owner."""
    entry: OutboxEntry


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one delivery."""

    status: str
    """``applied`` | ``duplicate`` (done either way), ``failed`` (counts an attempt) or
    ``unavailable`` (the target cannot take calls right now: retried, not counted)."""
    error: str | None = None


class Transport(Protocol):
    """How a delivery reaches its target database."""

    def deliver(self, delivery: Delivery) -> Outcome: ...


class LocalTransport:
    """Apply deliveries in databases reachable in this process (``resolve(name)``)."""

    def __init__(self, resolve: Callable[[str], DatabaseCore | None]) -> None:
        self._resolve = resolve

    def deliver(self, delivery: Delivery) -> Outcome:
        entry = delivery.entry
        target = self._resolve(entry.database)
        if target is None:
            return Outcome("failed", f"database {entry.database!r} does not exist")
        if target.closed:
            return Outcome("unavailable", f"database {entry.database!r} is closed")
        try:
            applied = remote.apply_remote(
                target, delivery.source, entry.seq, entry.reducer, entry.args, delivery.sender
            )
        except CosmictronError as exc:
            if target.closed:
                return Outcome("unavailable", f"database {entry.database!r} is closed")
            detail = str(exc) or type(exc).__name__
            if isinstance(exc, NotFound):
                detail = f"database {entry.database!r}: {detail}"
            return Outcome("failed", detail)
        return Outcome(applied.status)


class RemoteRelay:
    """Delivers ``ctx.call_remote`` calls between the databases added to it.

    Embedded use::

        relay = RemoteRelay()
        relay.add("orders", orders_db)
        relay.add("billing", billing_db)
        ...                         # reducers in either may call_remote the other
        relay.close()               # before closing the databases

    ``transport`` defaults to ``LocalTransport`` over the added databases.
    """

    def __init__(
        self,
        transport: Transport | None = None,
        attempts_max: int | None = None,
        retry_s: float | None = None,
    ) -> None:
        self._sources: dict[str, DatabaseCore] = {}
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._woken = False
        self._closed = False
        self._busy = False
        self._retry_at: dict[tuple[str, int], float] = {}
        self.transport: Transport = transport or LocalTransport(self._sources.get)
        self.attempts_max = attempts_max or limits.remote_call_attempts_max
        self.retry_s = retry_s if retry_s is not None else limits.remote_call_retry_s
        self._thread = threading.Thread(target=self._run, name="remote-relay", daemon=True)
        self._thread.start()

    # -- the databases --------------------------------------------------------------

    def add(self, name: str, db: Any) -> None:
        """Serve ``db`` (a ``Database``) under ``name``; drains what it left pending."""
        core: DatabaseCore = db.core
        with self._lock:
            self._sources[name] = core
        core.remote.wake = self.wake
        self.wake()

    def remove(self, name: str) -> None:
        """Stop serving ``name`` (deleted or closing); calls to it then fail."""
        with self._lock:
            core = self._sources.pop(name, None)
        if core is not None:
            core.remote.wake = None

    def wake(self) -> None:
        """Something was recorded: look at the outboxes again (cheap; any thread)."""
        with self._wakeup:
            self._woken = True
            self._wakeup.notify()

    def close(self) -> None:
        """Stop the thread after its current delivery; pending calls stay pending."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        self._thread.join()
        for name in list(self._sources):
            self.remove(name)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until no added database has a pending call (for tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                cores = list(self._sources.values())
                busy = self._busy or self._woken
            if not busy and not any(remote.pending(core)[0] for core in cores if not core.closed):
                return True
            time.sleep(0.01)
        return False

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wakeup:
                if not self._woken and not self._closed:
                    self._wakeup.wait(self._next_wait())
                if self._closed:
                    return
                self._woken = False
                self._busy = True
                sources = list(self._sources.items())
            try:
                for _, core in sources:
                    if self._closed:
                        break
                    try:
                        self._relay(core)
                    except Exception:
                        logger.exception("remote relay: delivering from %s failed", core.path)
            finally:
                # A wait left by an entry no pass attempted (its source closed meanwhile)
                # is stale: without this the next wait would be 0 and the thread spin.
                now = time.monotonic()
                for key in [k for k, at in self._retry_at.items() if at <= now]:
                    del self._retry_at[key]
                with self._lock:
                    self._busy = False

    def _next_wait(self) -> float:
        if not self._retry_at:
            return 1.0
        return max(0.0, min(self._retry_at.values()) - time.monotonic())

    def _relay(self, core: DatabaseCore) -> None:
        if core.closed:
            return
        entries, offset = remote.pending(core)
        if not entries:
            return
        core.persistence.wait_durable(offset)  # never apply a call that could be lost
        source = remote.source_key(core)
        sender = core.owner
        blocked: set[str] = set()
        ops: list[list[Any]] = []
        now = time.monotonic()
        for entry in entries:
            if entry.database in blocked or self._closed:
                continue
            key = (source, entry.seq)
            if self._retry_at.get(key, 0.0) > now:
                blocked.add(entry.database)
                continue
            outcome = self.transport.deliver(Delivery(source, sender, entry))
            if outcome.status in ("applied", "duplicate"):
                self._retry_at.pop(key, None)
                ops.append(["done", entry.seq])
                continue
            blocked.add(entry.database)  # later calls to it wait: order is the rule
            attempts = entry.attempts + (outcome.status == "failed")
            if outcome.status == "failed" and attempts >= self.attempts_max:
                self._retry_at.pop(key, None)
                ops.append(["fail", entry.seq, attempts, outcome.error])
                blocked.discard(entry.database)  # given up: the next one may go
                continue
            delay = self.retry_s * (2 ** max(0, attempts - 1))
            self._retry_at[key] = time.monotonic() + delay
            if outcome.status == "failed":
                ops.append(["try", entry.seq, attempts, outcome.error])
        if ops:
            remote.settle(core, ops)
