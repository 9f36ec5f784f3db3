"""Where a record becomes durable: the one interface below ``host/`` (issue 19, part 1).

``PersistenceLayer.wait_durable(offset)`` and ``durable_offset`` are the commit rule the
host builds on: no reply, ``tx_offset`` or subscription update goes out for a record
before ``wait_durable`` returned for it. A :class:`DurablePoint` is what answers them:

- **local** (the default, unchanged): the ``SyncCoordinator`` itself, the fsync policy with
  group commit (``sync.py``). ``PersistenceLayer`` binds its methods directly, so the
  single-node hot path pays nothing for the indirection.
- **replicated** (cluster mode): :class:`ReplicatedDurablePoint`, the local log (kept as the
  node's cache, synced under its own policy) *and* a :class:`Replicator` that has
  acknowledged the record on a quorum. ``cosmictron.cluster`` provides the JetStream one.

The commit log hands every record to the replicator as it is appended, under the writer
lock and in offset order (``CommitLog.on_record``): the exact payload bytes the local log
frames, so the replicated records are the ledger's records unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from cosmictron.durability.sync import SyncCoordinator


class DurablePoint(Protocol):
    """Answers "is offset N durable?" for one commit log."""

    def wait_durable(self, offset: int) -> None:
        """Block until ``offset`` (and every lower one) is durable.

        Raises:
            DurabilityError: it never will be (a failed sync, a refused append), or
                ``ClusterUnavailable``: not acknowledged in time (the outcome is unknown).
        """
        ...

    @property
    def durable_offset(self) -> int:
        """The highest offset known durable; it only grows."""
        ...


class Replicator(Protocol):
    """Copies a commit log's records to replicated storage, in order, pipelined.

    ``publish`` is called under the host's writer lock for each record in offset order and
    must not block on the network; ``wait_acked`` blocks a committing caller until the
    record is stored on a quorum.
    """

    refuse_commits: Callable[[Exception | None], None] | None
    """Set by the persistence layer: called with the failure when no record will ever be
    acknowledged again (another node leads), so the host refuses new transactions."""

    def start(self, last_offset: int, last_hash: bytes) -> None:
        """Begin after recovery: the local log ends at ``last_offset`` (0: empty).

        Raises:
            DurabilityError: the replicated log does not continue from there.
        """
        ...

    def publish(self, offset: int, payload: bytes) -> None:
        """Send one record (its framed payload) without waiting for its acknowledgement."""
        ...

    def wait_acked(self, offset: int) -> None:
        """Block until ``offset`` is acknowledged.

        Raises:
            ClusterUnavailable: not acknowledged in time; NotLeader: refused as stale.
        """
        ...

    @property
    def acked_offset(self) -> int:
        """The highest offset acknowledged (every lower one is too)."""
        ...

    def close(self) -> None:
        """Stop sending; idempotent. Records not yet acknowledged stay unacknowledged."""
        ...


class ReplicatedDurablePoint:
    """Durable = in the local log under its fsync policy and acknowledged by the replicator.

    The local wait comes first: it is usually instant (cluster nodes run the local log
    under ``periodic`` or ``never``: the quorum is the durability, the local log a cache).
    """

    def __init__(self, local: SyncCoordinator, replicator: Replicator) -> None:
        self.local = local
        self.replicator = replicator

    def wait_durable(self, offset: int) -> None:
        """See :meth:`DurablePoint.wait_durable`."""
        self.local.wait_durable(offset)
        self.replicator.wait_acked(offset)

    @property
    def durable_offset(self) -> int:
        """The acknowledged offset (the lower of it and the local one under ``always``,
        the only policy under which a caller waits for the local sync too)."""
        if self.local.fsync_policy == "always":
            return min(self.local.durable_offset, self.replicator.acked_offset)
        return self.replicator.acked_offset
