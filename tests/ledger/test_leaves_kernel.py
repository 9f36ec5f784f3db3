"""The compiled Merkle append (``ledger/_leaves.pyx``) and its pure-Python fallback store
exactly what one leaf at a time stores, and the ledger thread's staged batches
(``LedgerWriter.prehash``) give the same tree as hashing at the checkpoint."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from typing import Any

import pytest

from cosmictron import Database, DurabilityConfig
from cosmictron.durability.ledger_writer import PREHASH_RECORDS
from cosmictron.ledger import merkle, verify
from cosmictron.ledger.merkle import MerkleTree, append_payloads

needs_kernel = pytest.mark.skipif(
    not merkle.COMPILED,
    reason="the compiled Merkle append is not built here (no Cython or C compiler at "
    "install time, or COSMICTRON_PURE=1); the pure-Python loop is what runs",
)


def one_by_one(payloads: list[bytes]) -> MerkleTree:
    tree = MerkleTree()
    for payload in payloads:
        tree.append(payload)
    return tree


def stored(tree: MerkleTree) -> list[bytes]:
    return [tree.store.read(i) for i in range(len(tree.store))]


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_batches_store_what_single_appends_store(
    compiled: bool, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if compiled and not merkle.COMPILED:
        pytest.skip("the compiled Merkle append is not built here")
    if not compiled:
        monkeypatch.setattr(merkle, "_append_payloads", None)
    rng = random.Random(seed)
    payloads = [rng.randbytes(rng.randrange(0, 300)) for _ in range(rng.randrange(1, 900))]
    expected = one_by_one(payloads)
    batched = MerkleTree()
    position = 0
    while position < len(payloads):
        size = rng.choice([1, 2, 3, 7, 64, 255, 256, 1000])
        batched.extend_payloads(payloads[position : position + size])
        position += size
        assert batched.root() == expected.root(batched.size)
    assert stored(batched) == stored(expected)
    batched.extend_payloads([b"next"])
    expected.append(b"next")
    assert batched.root() == expected.root()


@needs_kernel
def test_the_kernel_refuses_what_is_not_bytes_and_leaves_the_frontier() -> None:
    frontier = [b"\x01" * 32]
    with pytest.raises(TypeError, match="bytes"):
        append_payloads(frontier, 1, [b"ok", "text"])  # type: ignore[list-item]
    assert frontier == [b"\x01" * 32]
    with pytest.raises(ValueError, match="32 bytes"):
        append_payloads([b"short"], 1, [b"x"])


def test_a_staged_batch_from_another_tree_is_refused() -> None:
    tree = one_by_one([b"a", b"b", b"c"])
    size, frontier = tree.frontier_nodes()
    out = append_payloads(frontier, size, [b"d"])
    tree.append(b"x")  # the tree moved on
    with pytest.raises(ValueError, match="do not extend"):
        tree.adopt(size + 1, frontier, out)


MODULE = """
from cosmictron import table, reducer, ReducerContext, field

@table(name="note")
class Note:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""

@reducer
def add(ctx: ReducerContext, text: str) -> None:
    Note.insert(Note(text=text))
"""


@needs_kernel
def test_prehashed_checkpoints_verify_and_match_a_rebuilt_tree(tmp_path: Any) -> None:
    """Checkpoints that adopted the ledger thread's staged hashes sign the roots a tree
    rebuilt from the log has (verify checks every checkpoint against it)."""
    module = tmp_path / "app.py"
    module.write_text(MODULE)
    config = DurabilityConfig(
        **{
            **vars(DurabilityConfig.from_profile("development")),
            "signing": "checkpoint",
            "checkpoint_interval_records": 700,
            "checkpoint_interval_ms": 3_600_000,  # no idle checkpoint between the asserts
        }
    )
    db = Database.open(tmp_path / "db", module=str(module), durability=config)
    ledger = db.core.persistence.ledger
    assert ledger is not None
    adopted = 0
    for i in range(5 * PREHASH_RECORDS):
        db.call("add", f"row {i}")
        if i % 97 == 0:  # besides the thread's own wakes: a staged batch at known points
            ledger.prehash()
            stage = ledger._stage
            assert stage is not None and stage.done == len(ledger.pending)
            adopted += 1
    db.close()
    assert adopted > 10
    result = verify(tmp_path / "db")
    assert result.ok, result.lines()
    assert result.checkpoints >= 2


def test_cosmictron_pure_turns_the_kernel_off() -> None:
    code = "from cosmictron.ledger import merkle; print(merkle.COMPILED)"
    env = {**os.environ, "COSMICTRON_PURE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
