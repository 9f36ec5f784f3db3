"""``MerkleTree.extend_hashes`` (a level at a time, the commit log's path) writes exactly
what ``append_hash`` (a leaf at a time) writes, for any split into batches."""

from __future__ import annotations

import hashlib
import random

import pytest

from cosmictron.ledger.merkle import MerkleTree


@pytest.mark.parametrize("seed", range(6))
def test_batches_of_any_size_store_what_single_appends_store(seed: int) -> None:
    rng = random.Random(seed)
    leaves = [hashlib.sha256(rng.randbytes(8)).digest() for _ in range(rng.randrange(1, 700))]
    one_by_one, batched = MerkleTree(), MerkleTree()
    for leaf in leaves:
        one_by_one.append_hash(leaf)
    position = 0
    while position < len(leaves):
        size = rng.choice([1, 2, 3, 7, 64, 100, 255, 256, 1000])
        batched.extend_hashes(leaves[position : position + size])
        position += size
        assert batched.root() == one_by_one.root(batched.size)
    count = len(one_by_one.store)
    assert [batched.store.read(i) for i in range(count)] == [
        one_by_one.store.read(i) for i in range(count)
    ]
    assert batched.size == one_by_one.size
    # The frontier continues correctly: one more leaf each way.
    extra = hashlib.sha256(b"next").digest()
    one_by_one.append_hash(extra)
    batched.extend_hashes([extra])
    assert batched.root() == one_by_one.root()


def test_an_empty_batch_changes_nothing_and_a_bad_leaf_is_refused() -> None:
    tree = MerkleTree()
    tree.extend_hashes([])
    assert tree.size == 0
    with pytest.raises(ValueError, match="32 bytes"):
        tree.extend_hashes([b"short"])
    assert tree.size == 0
