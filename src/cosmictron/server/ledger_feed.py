"""The ledger opt-in of WebSocket subscribers: leaf hashes and checkpoints with proofs.

A subscriber that subscribes with ``"ledger": true`` (docs/reference/websocket.md,
"Verifying as you go") gets, in each ``TransactionUpdate``, ``"ledger": {"seq",
"leaf_hash"}`` (the record's sequence number and its RFC 9162 leaf hash), and after every
signed checkpoint a ``LedgerCheckpoint`` with:

- ``note``: the signed checkpoint (C2SP), which the client checks with the database's
  public key alone;
- ``consistency``: the RFC 9162 consistency proof from the last checkpoint this
  subscriber was sent (``old_size``; or the size the client named in
  ``ledger_from_size``) to this one, so the server can never rewrite what it showed;
- ``inclusion``: an inclusion proof, against this checkpoint's root, for each update's
  leaf the subscriber received since the last one (the updates of transactions the
  checkpoint covers; later ones come with the next).

Everything here runs under the writer lock (``DatabaseFeed``'s writer-thread half): the
state is touched only there, and the tree is read at exactly the checkpoint's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cosmictron.ledger.checkpoint import Checkpoint
from cosmictron.ledger.errors import ProofUnavailable
from cosmictron.ledger.merkle import MerkleTree


@dataclass
class _Follower:
    last_size: int
    seqs: dict[int, bytes] = field(default_factory=dict)
    """Seqs (and leaf hashes) of updates sent since the last checkpoint, in order."""


class LedgerFollowers:
    """The subscribers that opted in, and what each still needs proven."""

    def __init__(self) -> None:
        self._followers: dict[Any, _Follower] = {}
        self._last: tuple[int, str, MerkleTree] | None = None
        """The last checkpoint (seq, note, and the ledger's tree), for :meth:`saw`: used
        only while the tree still has that checkpoint's size, under the writer lock."""

    def __bool__(self) -> bool:
        return bool(self._followers)

    def add(self, subscriber: Any, from_size: int | None) -> None:
        """Start following (once per subscriber; a later ``Subscribe`` changes nothing)."""
        if subscriber not in self._followers:
            self._followers[subscriber] = _Follower(from_size or 0)

    def saw(self, subscriber: Any, seq: int, leaf: bytes) -> dict[str, Any] | None:
        """Remember an update sent to ``subscriber``; return the ``LedgerCheckpoint`` to
        send right after it when the last checkpoint already covers it.

        That happens when the transaction's own commit made the checkpoint due: the
        commit path appends the checkpoint record right after the transaction's, before
        its updates are collected, so the follower was sent that checkpoint without this
        update's proof. If no record followed, no later checkpoint would ever prove it
        (an idle log is not checkpointed again): the same checkpoint is sent again, with
        an empty consistency proof from its own size and this update's inclusion proof.
        The tree still has exactly that checkpoint's size (it grows only at checkpoints,
        and this runs under the same writer lock as the commit).
        """
        follower = self._followers.get(subscriber)
        if follower is None:
            return None
        follower.seqs[seq] = leaf
        last = self._last
        if last is None:
            return None
        last_seq, note, tree = last
        if seq >= last_seq or follower.last_size != last_seq - 1 or tree.size != last_seq - 1:
            return None
        return self._message(follower, last_seq, note, tree)

    def on_checkpoint(
        self, seq: int, note: str, tree: MerkleTree
    ) -> list[tuple[Any, dict[str, Any]]]:
        """A ``LedgerCheckpoint`` for each follower (dropping the closed ones)."""
        self._last = (seq, note, tree)
        messages = []
        for subscriber, follower in list(self._followers.items()):
            if getattr(subscriber, "closed", False):
                del self._followers[subscriber]
                continue
            messages.append((subscriber, self._message(follower, seq, note, tree)))
        return messages

    @staticmethod
    def _message(follower: _Follower, seq: int, note: str, tree: MerkleTree) -> dict[str, Any]:
        """The ``LedgerCheckpoint`` of checkpoint record ``seq`` for one follower."""
        size = seq - 1
        header = Checkpoint.from_text(note.split("\n\n", 1)[0] + "\n")
        old = follower.last_size
        consistency: list[str] | None
        if 0 < old <= size:
            try:
                consistency = [h.hex() for h in tree.consistency_proof(old, size)]
            except ProofUnavailable:  # a node that joined from a snapshot past ``old``:
                consistency = None  # the client refuses it as ``no_consistency``
        else:
            consistency = None if old else []
        inclusion = []
        for s, leaf in list(follower.seqs.items()):
            if s > size:
                continue
            try:
                proof = tree.inclusion_proof(s - 1, size)
            except ProofUnavailable:  # below a joined node's base: never sent by it
                del follower.seqs[s]
                continue
            inclusion.append({"seq": s, "leaf_hash": leaf.hex(), "proof": [h.hex() for h in proof]})
            del follower.seqs[s]
        follower.last_size = max(old, size)
        return {
            "LedgerCheckpoint": {
                "seq": seq,
                "size": size,
                "root": header.root_hash.hex(),
                "note": note,
                "old_size": old,
                "consistency": consistency,
                "inclusion": inclusion,
            }
        }


__all__ = ["LedgerFollowers"]
