"""The archived range: what stands in for log segments moved out of ``log/``.

With ``log_retention = "archive"`` the segments wholly below a snapshot (and below a
checkpoint the side file holds) leave the data directory (``durability/log_archive.py``).
Their records stay provable: their leaves stay in the Merkle tree (the subtree hashes
in ``ledger/tree.hashes`` are kept, and synced before a segment moves), so inclusion
proofs for them and consistency proofs across them are served as before. What the
verifier needs to go on from the first record still in ``log/`` is this file,
``<data_dir>/ledger/archived.json``::

    {"through": A,                 records 1..A are archived
     "last_hash": hex,             SHA-256 of record A (record A+1's prev_hash)
     "last_time_us": int,          record A's commit time
     "origin": "cosmictron/…",
     "frontier": [hex, …],         the tree's compact range at size A (one hash per
                                   set bit of A, highest level first)
     "keys": [[verifier key text, first seq, last seq | null, ended at | null], …],
     "joined_at": J,               (cluster mode; absent or 0 otherwise) this node
     "joined_frontier": [hex, …]}  joined from a snapshot at offset J: records 1..J were
                                   never in its log, and its tree starts from this
                                   compact range at size J (``merkle.BasedHashStore``)

Nothing in it is taken on trust for long: record A+1 must name ``last_hash`` (else
``chain_broken``), and the first checkpoint after A is a signature over a root computed
from ``frontier`` and the records after A, so a changed frontier or key list is a
``checkpoint_mismatch`` or ``checkpoint_invalid`` there. ``verify`` reports the range
as archived (``VerifyResult.archived_through``) instead of calling the log broken.

The same state, at a snapshot's offset, travels inside the snapshot in cluster mode
(state key ``"ledger"``, ``durability/ledger_state.py``): a node that joins from the
snapshot writes it here with ``joined_at`` set, and from then on ``verify`` and the
database's open check go on from it exactly as after an archive. ``joined_at`` and
``joined_frontier`` never change after that (an archive of the node's own segments
keeps them), since the tree's stored hashes start there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from cosmictron.ledger.signing import KeyRange, VerifierKey

ARCHIVED_FILE = os.path.join("ledger", "archived.json")


@dataclass
class ArchivedRange:
    """Records ``1..through`` are archived; the state a verifier resumes from after them."""

    through: int
    last_hash: bytes
    last_time_us: int
    origin: str
    frontier: list[bytes]
    keys: list[KeyRange] = field(default_factory=list)
    joined_at: int = 0
    """This node joined from a snapshot at this offset (0: it copied from record 1)."""
    joined_frontier: list[bytes] = field(default_factory=list)
    """The tree's compact range at ``joined_at``: where its stored hashes start."""

    def to_dict(self) -> dict[str, object]:
        """The manifest as JSON-ready values (what a snapshot's ``"ledger"`` holds)."""
        data: dict[str, object] = {
            "through": self.through,
            "last_hash": self.last_hash.hex(),
            "last_time_us": self.last_time_us,
            "origin": self.origin,
            "frontier": [h.hex() for h in self.frontier],
            "keys": [[r.key.to_text(), r.first, r.last, r.ended_at] for r in self.keys],
        }
        if self.joined_at:
            data["joined_at"] = self.joined_at
            data["joined_frontier"] = [h.hex() for h in self.joined_frontier]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ArchivedRange:
        """Parse the file; raises ValueError naming what is wrong."""
        try:
            return cls.from_dict(json.loads(text))
        except ValueError as exc:
            raise ValueError(f"{ARCHIVED_FILE} is malformed: {exc}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchivedRange:
        """Read :meth:`to_dict`'s values; raises ValueError naming what is wrong."""
        try:
            keys = [
                KeyRange(VerifierKey.from_text(k), int(first), last, ended)
                for k, first, last, ended in data["keys"]
            ]
            return cls(
                through=int(data["through"]),
                last_hash=bytes.fromhex(data["last_hash"]),
                last_time_us=int(data["last_time_us"]),
                origin=str(data["origin"]),
                frontier=[bytes.fromhex(h) for h in data["frontier"]],
                keys=keys,
                joined_at=int(data.get("joined_at", 0)),
                joined_frontier=[bytes.fromhex(h) for h in data.get("joined_frontier", [])],
            )
        except Exception as exc:  # json, KeyError, ValueError, a malformed key: all one
            raise ValueError(str(exc)) from None


def read_archived(data_dir: str) -> ArchivedRange | None:
    """The data directory's archived range, or None when nothing was archived.

    Raises:
        ValueError: the file exists but does not parse.
    """
    try:
        with open(os.path.join(data_dir, ARCHIVED_FILE), encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        return None
    return ArchivedRange.from_json(text)


def write_archived(data_dir: str, archived: ArchivedRange) -> None:
    """Replace the file atomically and durably (temporary file, fsync, rename, fsync dir)."""
    path = os.path.join(data_dir, ARCHIVED_FILE)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, archived.to_json().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    directory = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


__all__ = ["ARCHIVED_FILE", "ArchivedRange", "read_archived", "write_archived"]
