"""Fakes for tests, ours and users': disks in memory that can crash, and their checks.

Owns ``MemoryStorage`` (``storage.py``), ``FaultyStorage`` (``faulty.py``) and ``check_storage``
(``conformance.py``), the suite that the real ``FileStorage`` and every fake must pass, so
a fake never drifts from the disk it stands in for; ``frame_spans``/``flip_byte``
(``damage.py``) for tests that damage a real log; ``PlannedFaults`` (``planned.py``),
one fault or power loss at a chosen storage call, to walk every step of a procedure; and
``ManualClock`` (``clock.py``), a clock that moves only when a test moves it, for the
scheduler; ``NatsCluster`` (``nats.py``), a real N-server NATS JetStream cluster on loopback
for cluster mode's tests. Imports
``cosmictron.durability`` (the ``Storage`` contract) and root modules only. Nothing here
is used outside tests.
"""

from cosmictron.testing.clock import ManualClock
from cosmictron.testing.conformance import check_storage
from cosmictron.testing.damage import flip_byte, frame_spans
from cosmictron.testing.faulty import CrashReport, FaultyStorage
from cosmictron.testing.nats import NatsCluster, NatsUnavailable
from cosmictron.testing.planned import PlannedFaults, PowerLoss
from cosmictron.testing.storage import MemoryStorage

__all__ = [
    "CrashReport",
    "FaultyStorage",
    "ManualClock",
    "MemoryStorage",
    "NatsCluster",
    "NatsUnavailable",
    "PlannedFaults",
    "PowerLoss",
    "check_storage",
    "flip_byte",
    "frame_spans",
]
