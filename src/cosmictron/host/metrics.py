"""Per-reducer counters and latency histograms, read by the server's ``/metrics``.

Kept in the host, not the server, so every way of calling a reducer (HTTP, WebSocket,
the SDK, embedded ``db.call``) is counted once, in the same place. A call's duration runs
from entering ``Database`` to its result being durable under the fsync policy: what a
caller waits for. Observing costs two clock reads and a bisect.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

BUCKETS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Histogram upper bounds in seconds (Prometheus ``le``); one more bucket is +Inf."""

_bisect_left = bisect.bisect_left


@dataclass
class ReducerTally:
    calls: int = 0
    errors: int = 0
    seconds_total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))


class ReducerMetrics:
    """Calls, errors and durations per reducer name, for one database."""

    def __init__(self) -> None:
        self._tallies: dict[str, ReducerTally] = {}
        self._lock = threading.Lock()

    def observe(self, reducer: str, seconds: float, failed: bool) -> None:
        # The bucket is found before taking the lock, which guards only the updates.
        bucket = _bisect_left(BUCKETS_S, seconds)
        with self._lock:
            tally = self._tallies.get(reducer)
            if tally is None:
                tally = self._tallies[reducer] = ReducerTally()
            tally.calls += 1
            if failed:
                tally.errors += 1
            tally.seconds_total += seconds
            tally.buckets[bucket] += 1

    def snapshot(self) -> dict[str, ReducerTally]:
        """A copy of every reducer's tally (cumulative since the database opened)."""
        with self._lock:
            return {
                name: ReducerTally(t.calls, t.errors, t.seconds_total, list(t.buckets))
                for name, t in self._tallies.items()
            }
