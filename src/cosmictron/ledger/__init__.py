"""The compliance ledger: hash chain, Merkle tree, signed checkpoints, RFC 3161 anchors.

Owns how a record's hash is computed and what the first record chains to, so that the commit
log (``durability/``) and the offline verifier agree on one definition; and the library
pieces the ledger is built from (design: ``docs/design/ledger.md``):

- ``chain``: the hash chain over record payloads (wired into the commit log today);
- ``merkle``: the RFC 9162 tree, its append-only store of subtree hashes, proofs and
  their verifiers;
- ``signing``: Ed25519 keys, key ids, algorithm ids and key validity ranges;
- ``note`` and ``checkpoint``: C2SP signed notes and tlog checkpoints;
- ``tsa``: the RFC 3161 client and verifier;
- ``errors``: what each failed check raises;
- ``record_format``: the fields of every commit-log record and the ledger's record kinds;
- ``logread`` and ``verifier``: ``verify(path) -> VerifyResult``, the whole-history check
  (``cosmictron-cli verify``), reading the log independently of ``durability/``;
- ``anchor``: RFC 3161 anchor records and their side file; ``bundle``: audit bundles
  (``cosmictron-cli export-audit``) and their offline check.

The write side (the tree fed as records are committed, signing, checkpoints, the check
on open) is ``durability/ledger_writer.py``, and anchoring ``durability/anchorer.py``.
The names of ``tsa`` (``asn1crypto``) are loaded on first use. Imports nothing from the
layers above it; ``durability`` imports this package, never the reverse.
"""

from __future__ import annotations

import importlib
from typing import Any

from cosmictron.ledger.chain import GENESIS_HASH, HASH_BYTES, record_hash
from cosmictron.ledger.merkle import (
    EMPTY_ROOT,
    FileHashStore,
    Frontier,
    MemoryHashStore,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

_LAZY = {
    "Checkpoint": "checkpoint",
    "open_checkpoint": "checkpoint",
    "sign_checkpoint": "checkpoint",
    "KeyRing": "signing",
    "SigningKey": "signing",
    "VerifierKey": "signing",
    "check_algorithm": "signing",
    "TimestampToken": "tsa",
    "verify_token": "tsa",
    "verify": "verifier",
    "VerifyResult": "verifier",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cosmictron.ledger' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cosmictron.ledger.{module}"), name)


__all__ = [
    "EMPTY_ROOT",
    "GENESIS_HASH",
    "HASH_BYTES",
    "Checkpoint",
    "FileHashStore",
    "Frontier",
    "KeyRing",
    "MemoryHashStore",
    "MerkleTree",
    "SigningKey",
    "TimestampToken",
    "VerifierKey",
    "VerifyResult",
    "check_algorithm",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "record_hash",
    "sign_checkpoint",
    "verify",
    "verify_consistency",
    "verify_inclusion",
    "verify_token",
]
