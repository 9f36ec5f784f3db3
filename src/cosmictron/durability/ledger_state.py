"""The ledger's state at a snapshot's offset, carried inside the snapshot.

In cluster mode a node may join a database from a snapshot shipped to the object store
and copy only the records after it (``cluster/snapshots.py``); the stream below it is
then trimmed. With the ledger on, that node must still check every record it copies as
``verify`` would, sign checkpoints whose roots equal the leader's, and prove inclusion
of the records it holds. The records below the snapshot are what its tree would be
built from, so the snapshot carries what stands in for them: the manifest an archive
writes (``ledger/archived.py``) at the snapshot's offset ``S``: record ``S``'s hash
(the next ``prev_hash``) and time, the origin, the tree's compact range at ``S`` (one
hash per set bit of ``S``) and the key ranges valid there. It is the snapshot state's
``"ledger"`` key (a JSON-ready dict), so it is covered by the snapshot's crc and
travels wherever the snapshot does; a database's own recovery ignores it.

The capture runs when the snapshot is requested, under the writer lock, so it is exactly
the state at the snapshot's offset: the tree's frontier and the payloads not yet in it
(the leader puts leaves in the tree at checkpoints) are copied, and the hashing runs
later on the snapshot thread, like the state's encoding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cosmictron.durability.commitlog import CommitLog
from cosmictron.durability.ledger_writer import LedgerWriter
from cosmictron.durability.log_archive import archived_keys
from cosmictron.ledger.archived import ArchivedRange, read_archived
from cosmictron.ledger.merkle import append_payloads
from cosmictron.ledger.signing import KeyRing
from cosmictron.ledger.verifier import read_side_checkpoints

logger = logging.getLogger(__name__)

LEDGER_STATE_KEY = "ledger"
"""The snapshot state's key holding the ledger's state at its offset."""


def capture_ledger_state(
    ledger: LedgerWriter, log: CommitLog
) -> Callable[[], dict[str, Any]] | None:
    """Capture the ledger's state after the log's last record; the returned function
    builds its manifest (``ArchivedRange.to_dict``) later, off the writer lock.

    Call under the writer lock. None when the ledger keeps no tree (simulated storage),
    or the tree and the pending records do not add up to the log (never expected: the
    snapshot is then written without a ledger state, and a node cannot join from it
    with the ledger on).
    """
    tree = ledger.tree
    if tree is None:
        return None
    through = log.next_offset - 1
    size, frontier = tree.frontier_nodes()
    pending = list(ledger.pending)
    if size + len(pending) != through:
        logger.warning(
            "no ledger state in the snapshot at %d: the tree holds %d leaves and %d wait",
            through, size, len(pending),
        )  # fmt: skip
        return None
    last_hash, last_time_us, origin = log.last_hash, log.last_time_us, ledger.origin
    ring = KeyRing.seeded(ledger.ring.ranges(), through)  # copies: rotations go on
    data_dir = ledger.data_dir

    def build() -> dict[str, Any]:
        append_payloads(frontier, size, pending)  # the frontier at ``through``
        previous = read_archived(data_dir)
        return ArchivedRange(
            through=through,
            last_hash=last_hash,
            last_time_us=last_time_us,
            origin=origin,
            frontier=frontier,
            keys=archived_keys(ring, previous, through, read_side_checkpoints(data_dir)),
        ).to_dict()

    return build


def ledger_state(state: Any) -> ArchivedRange | None:
    """The ledger state a snapshot's state carries, or None (the ledger was off, or the
    snapshot predates this).

    Raises:
        ValueError: the state holds one that does not parse.
    """
    if not isinstance(state, dict) or LEDGER_STATE_KEY not in state:
        return None
    return ArchivedRange.from_dict(state[LEDGER_STATE_KEY])


__all__ = ["LEDGER_STATE_KEY", "capture_ledger_state", "ledger_state"]
