"""Cluster mode's counters, read by the server's ``/metrics`` (docs/reference/http.md).

The cluster code observes events where they happen: ``jetstream_log.py`` the time from
publishing a record to JetStream's ack, ``lease.py`` takeovers and refused or failed
renewals, ``placement.py`` planned hand-overs. They land in :data:`CLUSTER_METRICS`, one
per process (a process is one node), keyed by database, so a database this node stops
leading and leads again keeps counting where it left off: counters only grow, as
Prometheus expects. Observing costs a lock and a bisect. The replication lag is read at
scrape time instead (``stream_positions.py``, off the event loop: ``server/metrics.py``).
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field

from cosmictron.host.metrics import BUCKETS_S


@dataclass
class Histogram:
    """Observations in ``BUCKETS_S`` buckets (the last is +Inf), their count and sum."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    count: int = 0
    total: float = 0.0


class ClusterMetrics:
    """Per-database cluster counters of this process (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.append_seconds: dict[str, Histogram] = {}
        self.takeovers: Counter[tuple[str, str]] = Counter()
        """``(database, kind)``: leases this node took from another; kind ``expired`` (a
        failover: the holder went silent) or ``handover`` (released to this node)."""
        self.handovers: Counter[str] = Counter()
        """Databases this node handed over (planned stepdowns)."""
        self.renewals_failed: Counter[tuple[str, str]] = Counter()
        """``(database, reason)``: renewals refused (``lost``: another node took the key)
        or that could not be made (``error``: JetStream did not answer)."""

    def observe_append(self, database: str, seconds: float) -> None:
        bucket = bisect.bisect_left(BUCKETS_S, seconds)
        with self._lock:
            histogram = self.append_seconds.get(database)
            if histogram is None:
                histogram = self.append_seconds[database] = Histogram()
            histogram.buckets[bucket] += 1
            histogram.count += 1
            histogram.total += seconds

    def took_over(self, database: str, kind: str) -> None:
        with self._lock:
            self.takeovers[(database, kind)] += 1

    def handed_over(self, database: str) -> None:
        with self._lock:
            self.handovers[database] += 1

    def renewal_failed(self, database: str, reason: str) -> None:
        with self._lock:
            self.renewals_failed[(database, reason)] += 1

    def snapshot_append(self, database: str) -> Histogram | None:
        """A copy of ``database``'s append histogram (None: nothing appended here yet)."""
        with self._lock:
            histogram = self.append_seconds.get(database)
            if histogram is None:
                return None
            return Histogram(list(histogram.buckets), histogram.count, histogram.total)


CLUSTER_METRICS = ClusterMetrics()
"""This process's cluster counters."""
