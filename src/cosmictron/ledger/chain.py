"""The hash chain: every record names the SHA-256 of its predecessor's payload.

A record's hash is ``sha256(payload)`` where ``payload`` is the exact msgpack bytes written
to the commit log (see ``cosmictron.durability.record``). Hashing the bytes as written,
rather than a re-encoding, means a verifier needs no canonical encoder: it hashes what it
reads. The first record ever chains to :data:`GENESIS_HASH`, 32 zero bytes.
"""

from __future__ import annotations

import hashlib

HASH_BYTES = 32
"""Length of every hash in the chain (SHA-256)."""

GENESIS_HASH = bytes(HASH_BYTES)
"""The ``prev_hash`` of the record at offset 1: there is nothing before it."""

_sha256 = hashlib.sha256


def record_hash(payload: bytes | memoryview) -> bytes:
    """Return the chain hash of one record's payload.

    Args:
        payload: the record's payload bytes exactly as framed in the log.

    Returns:
        The 32-byte SHA-256 digest.

    >>> record_hash(b"").hex()[:16]
    'e3b0c44298fc1c14'
    """
    return _sha256(payload).digest()
