"""``ManualClock``: a clock that moves only when a test moves it.

It keeps the ``cosmictron.host.clock.Clock`` contract (structurally: ``testing`` may not
import ``host``): ``now_us()`` is whatever the test last set, and ``wait_until`` blocks
until the test advances the clock to the deadline or the waiter is woken. Nothing here
sleeps, so a scheduler test runs in microseconds and never depends on the machine's
speed.
"""

from __future__ import annotations

import threading

_MICROS_PER_SECOND = 1_000_000

DEFAULT_START_US = 1_767_225_600_000_000
"""2026-01-01T00:00:00Z: a fixed, round start so that expected timestamps are readable."""


class ManualClock:
    """A controllable ``Clock``: ``advance(seconds)``/``set_us(t)`` move it; waiters wake."""

    def __init__(self, start_us: int = DEFAULT_START_US) -> None:
        self._now_us = start_us
        self._lock = threading.Lock()
        # Each waiter: (deadline in µs, the event to set when the deadline is reached).
        self._waiters: list[tuple[int, threading.Event]] = []

    def now_us(self) -> int:
        with self._lock:
            return self._now_us

    def advance(self, seconds: float) -> int:
        """Move the clock forward by ``seconds`` (not backwards); returns the new time."""
        if seconds < 0:
            raise ValueError(f"a ManualClock only moves forward, got {seconds} s")
        with self._lock:
            target = self._now_us + round(seconds * _MICROS_PER_SECOND)
        return self.set_us(target)

    def set_us(self, now_us: int) -> int:
        """Set the time (it may step backwards, as a wall clock can); wake due waiters."""
        with self._lock:
            self._now_us = now_us
            due = [event for deadline, event in self._waiters if deadline <= now_us]
        for event in due:
            event.set()
        return now_us

    def wait_until(self, deadline_us: int | None, wake: threading.Event) -> None:
        if deadline_us is not None:
            entry = (deadline_us, wake)
            with self._lock:
                if self._now_us >= deadline_us:
                    return
                self._waiters.append(entry)
        try:
            wake.wait()
        finally:
            if deadline_us is not None:
                with self._lock:
                    self._waiters.remove(entry)

    def __repr__(self) -> str:
        return f"ManualClock(now_us={self.now_us()})"
