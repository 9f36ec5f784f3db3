"""The ledger feed on a cluster node that joined from a snapshot (issue 19, ctrim).

Such a node's tree starts from the compact range at the snapshot's offset ``S``
(``merkle.BasedHashStore``): a subscriber that resumes from a checkpoint size below ``S``
cannot be given a consistency proof there. It must get a checkpoint without one (its SDK
then refuses the stream as ``no_consistency``), while the feed goes on for every other
subscriber; it must never break the checkpoint for all of them.
"""

from __future__ import annotations

import pytest

from cosmictron.client.ledger import LedgerVerificationError, LedgerVerifier
from cosmictron.ledger.checkpoint import Checkpoint, sign_checkpoint
from cosmictron.ledger.merkle import BasedHashStore, MemoryHashStore, MerkleTree, leaf_hash
from cosmictron.ledger.signing import SigningKey
from cosmictron.server.ledger_feed import LedgerFollowers


def test_a_follower_below_a_joined_nodes_base_gets_no_proof_and_the_others_go_on() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(40)]
    full = MerkleTree()
    full.extend_hashes(leaves)
    base = 20
    tree = MerkleTree(BasedHashStore(MemoryHashStore(), base, full.frontier_at(base)))
    tree.extend_hashes(leaves[base:30])
    key = SigningKey.generate("cosmictron/joined")
    note = sign_checkpoint(Checkpoint.with_time(key.name, 30, tree.root(), 1), key)
    feed = LedgerFollowers()
    feed.add("behind", base - 5)  # resumes from a checkpoint the node cannot prove from
    feed.add("after", base)
    feed.add("new", None)
    messages = dict(feed.on_checkpoint(31, note, tree))
    assert set(messages) == {"behind", "after", "new"}
    assert messages["behind"]["LedgerCheckpoint"]["consistency"] is None
    assert messages["after"]["LedgerCheckpoint"]["consistency"] == [
        h.hex() for h in full.consistency_proof(base, 30)
    ]
    verifier = LedgerVerifier.for_key(key.verifier.to_text())
    verifier.size, verifier.root = base - 5, full.root(base - 5)
    with pytest.raises(LedgerVerificationError, match="no consistency proof"):
        verifier.on_checkpoint(messages["behind"]["LedgerCheckpoint"])
