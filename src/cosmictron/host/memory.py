"""The memory budget: refuse a transaction that would grow the tables past the limit.

The estimate is cheap on purpose (``Table.estimated_bytes``: a fixed cost per row plus
the lengths of text and bytes values), because it is consulted on every commit. Each
table also remembers its estimate as of the last commit (``committed_bytes``), so a
transaction's growth is one subtraction per changed table, not a walk of its rows.
A transaction that shrinks the tables always commits, even over the limit, so a full
database can be cleaned up.

``collector_paused`` and ``settle_long_lived`` live here too: the cyclic garbage
collector costs most, and can free least, where many objects are built at once (replay,
bulk loads) or live as long as the process (loaded modules, opened databases).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

from cosmictron.datastore import Datastore, TableChange
from cosmictron.errors import ResourceExhausted


class MemoryBudget:
    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0

    def reset(self, datastore: Datastore) -> None:
        """Take the datastore's current state as committed (after recovery)."""
        for table in datastore:
            table.committed_bytes = table.estimated_bytes
        self.used_bytes = datastore.estimated_bytes()

    def check(self, changes: list[TableChange]) -> int:
        """Return the estimate after ``changes``; refuse them if they grow past the limit.

        Raises:
            ResourceExhausted: the transaction grows the tables past ``limit_bytes``.
        """
        growth = 0
        for change in changes:
            table = change.table
            growth += table.estimated_bytes - table.committed_bytes
        used = self.used_bytes + growth
        if growth > 0 and used > self.limit_bytes:
            raise ResourceExhausted(
                f"this transaction would bring the database to about {used} bytes, over its "
                f"memory limit of {self.limit_bytes} bytes (memory_limit_bytes); "
                f"nothing was changed"
            )
        return used

    def commit(self, used_bytes: int, changes: list[TableChange]) -> None:
        """Adopt the estimate ``check`` returned, once the transaction is in the log."""
        if len(changes) == 1:
            # One table changed (most transactions): its growth is all of ``check``'s,
            # so its estimate needs no second walk through ``estimated_bytes``.
            changes[0].table.committed_bytes += used_bytes - self.used_bytes
        else:
            for change in changes:
                change.table.committed_bytes = change.table.estimated_bytes
        self.used_bytes = used_bytes


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector for the block, restoring it afterwards.

    Replay, bulk loads and parsing a ``bulk_insert`` body allocate a tuple per row and
    keep all of them; the collector would rescan the whole growing heap again and again
    (a 1M-row replay ran twice as long in a process with a large heap; it was 40 % of
    parsing a 1M-row body) and can free nothing there.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def settle_long_lived() -> None:
    """Collect once, then move every surviving object out of the collector's reach.

    A server holds hundreds of thousands of objects that live as long as it does: the
    imported libraries, each module's code, the opened tables and their rows. Every
    full (oldest-generation) collection walked all of them, and held the interpreter
    for 35-60 ms each time it ran (measured in ``cosmictron-cli start`` during the
    attack tests), which every request and the event loop waited out. ``gc.freeze``
    leaves those objects to reference counting alone. It is called after the server
    opens its databases and after each deploy, restore or delete; the collection it
    starts with frees what those left behind (an updated module's old code is a cycle
    of functions and globals), since frozen cycles are never collected. That one
    collection is the pause, paid by an administrative request instead of by a
    client's call. Blocking: run it off the event loop.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
