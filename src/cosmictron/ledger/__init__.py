"""The compliance ledger: hash chain now; Merkle trees, signatures and RFC 3161 anchoring later.

Owns how a record's hash is computed and what the first record chains to, so that the commit
log (``durability/``) and the offline verifier agree on one definition. Imports nothing from
the layers above it; ``durability`` imports this package, never the reverse.
"""

from cosmictron.ledger.chain import GENESIS_HASH, HASH_BYTES, record_hash

__all__ = ["GENESIS_HASH", "HASH_BYTES", "record_hash"]
