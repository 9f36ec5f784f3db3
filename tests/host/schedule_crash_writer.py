"""The process ``test_scheduler.py`` kills right after a scheduled run committed.

Usage: ``python schedule_crash_writer.py DATA_DIR MODULE_PATH``

It opens the database on a ``ManualClock`` under the ``production`` profile, schedules
``every(10)``, moves the clock one interval, waits until the run has committed, prints
``ran 1`` and then blocks until it is killed.
"""

from __future__ import annotations

import sys
import threading

from cosmictron import Database, DurabilityConfig
from cosmictron.testing import ManualClock


def main(argv: list[str]) -> int:
    clock = ManualClock()
    durability = DurabilityConfig.from_profile("production")
    db = Database.open(argv[1], argv[2], durability=durability, clock=clock)
    db.call("every", 10.0)
    clock.advance(10)
    if not db.wait_scheduler_idle(30):
        return 1
    print(f"ran {len(db.rows('run'))}", flush=True)
    threading.Event().wait(120)  # the parent kills us long before this
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
