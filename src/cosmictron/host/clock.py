"""Time, behind an interface, so the scheduler can be driven by tests without sleeping.

The host reads the wall clock in two places: a transaction's timestamp
(``transactions.next_timestamp_us``) and the scheduler's "what is due now, and how long do I
wait". Both go through a ``Clock``. ``SystemClock`` is the real one;
``cosmictron.testing.ManualClock`` only moves when a test moves it, and wakes the waiting
scheduler when it does, so a test can say "three intervals pass" and see exactly three
runs, with no sleep and no timing assertion.

The contract every clock must keep:

- ``now_us()`` returns microseconds since the Unix epoch (UTC). It may step backwards
  (the wall clock does); callers that need monotonic values keep their own maximum.
- ``wait_until(deadline_us, wake)`` returns when ``now_us() >= deadline_us`` or when
  ``wake`` is set, whichever comes first (``deadline_us=None``: only ``wake``). It may
  return early for no reason: callers re-check what they were waiting for. It never
  clears ``wake``; the caller does.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the host needs from time (see the module docstring for the contract)."""

    def now_us(self) -> int:
        """Microseconds since the Unix epoch."""
        ...

    def wait_until(self, deadline_us: int | None, wake: threading.Event) -> None:
        """Block until ``deadline_us`` is reached or ``wake`` is set."""
        ...


class SystemClock:
    """The wall clock; waits are ``Event.wait`` with a timeout, so a wake is immediate."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def wait_until(self, deadline_us: int | None, wake: threading.Event) -> None:
        if deadline_us is None:
            wake.wait()
            return
        remaining_us = deadline_us - self.now_us()
        if remaining_us > 0:
            wake.wait(remaining_us / 1_000_000)

    def __repr__(self) -> str:
        return "SystemClock()"
