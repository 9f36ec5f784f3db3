"""The canonical record: which fields a commit-log payload holds, and what each kind means.

A payload (format version 2) is the msgpack array, exactly as written to the log::

    [version, kind, seq, prev_hash, body, origin, time_us, hash_alg, key_fp, signature]
     0        1     2    3          4     5       6        7         8       9

- ``version``: :data:`FORMAT_VERSION` (2). Version 1 (Cosmictron 0.8) had only the
  first five fields; such records are *legacy*: they chain, but carry no origin, time or
  signature (see ``MIGRATED_KIND``).
- ``kind``: what the body is (the host's kinds 0 and 1, the ledger's kinds below).
- ``seq``: the record's sequence number (its offset, 1-based); leaf index = ``seq - 1``.
- ``prev_hash``: SHA-256 of the previous payload (32 zero bytes before the first).
- ``origin``: the log's identity, ``cosmictron/<database id>``; also the checkpoint
  origin and the signing key's name, so a record copied from another log is refused.
- ``time_us``: the commit time in Unix microseconds, never below the previous record's.
- ``hash_alg``: ``"sha256"``; any other (``"sha1"``...) is refused by the verifier.
- ``key_fp``: the 32-byte fingerprint of the key that signed this record, or nil.
- ``signature``: nil; or the Ed25519 signature over :func:`signing_message`; or, for a
  rotation, ``[old key's signature, new key's signature]`` over the same message.

The first five fields sit where version 1 had them, so a reader that wants only
``(kind, seq, prev_hash, body)`` reads the same indices in either version. The leaf hash
is ``SHA-256(0x00 || payload)``, over all ten fields: what is chained, what is in the
Merkle tree and what is signed are the same bytes.

Ledger record bodies are lists whose first element is the commit time (as host bodies
are), then:

- ``KEY_ADDED_KIND``: ``[time_us, verifier key text]``; signed by that key.
- ``KEY_ROTATED_KIND``: ``[time_us, old fingerprint, new verifier key text]``; signed by
  both (the record is the old key's last and the new key's first).
- ``KEY_REVOKED_KIND``: ``[time_us, fingerprint]``; signed by another active key, or by
  the revoked key itself; the key signs nothing from this record on.
- ``CHECKPOINT_KIND``: ``[time_us, signed checkpoint note]``; the note's tree size is
  ``seq - 1`` (every record before this one).
- ``ANCHOR_KIND``: ``[time_us, checkpoint seq, RFC 3161 token DER, TSA URL]``.
- ``MIGRATED_KIND``: ``[time_us, last legacy seq]``: the records before it are version 1.
"""

from __future__ import annotations

from typing import Any

import msgpack

FORMAT_VERSION = 2
LEGACY_FORMAT_VERSION = 1
FIELD_COUNT = 10
LEGACY_FIELD_COUNT = 5

VERSION, KIND, SEQ, PREV_HASH, BODY, ORIGIN, TIME_US, HASH_ALG, KEY_FP, SIGNATURE = range(10)

HASH_ALGORITHM = "sha256"

TX_KIND = 0
MODULE_KIND = 1
KEY_ADDED_KIND = 2
KEY_ROTATED_KIND = 3
KEY_REVOKED_KIND = 4
CHECKPOINT_KIND = 5
ANCHOR_KIND = 6
MIGRATED_KIND = 7
LEDGER_KINDS = frozenset(
    {
        KEY_ADDED_KIND,
        KEY_ROTATED_KIND,
        KEY_REVOKED_KIND,
        CHECKPOINT_KIND,
        ANCHOR_KIND,
        MIGRATED_KIND,
    }
)
"""Kinds the ledger writes; the host ignores them on replay (nothing to apply)."""

ORIGIN_PREFIX = "cosmictron/"


def signing_message(fields: list[Any]) -> bytes:
    """The bytes a record's signature covers: the payload with ``signature`` set to nil."""
    unsigned = list(fields)
    unsigned[SIGNATURE] = None
    return msgpack.packb(unsigned, use_bin_type=True)


def pack_fields(fields: list[Any]) -> bytes:
    """The payload of ``fields`` (msgpack, bin type for bytes), as the log writes it."""
    return msgpack.packb(fields, use_bin_type=True)


def unpack_fields(payload: bytes | memoryview) -> list[Any]:
    """The fields of a payload; raises ValueError for one that is not a record array."""
    try:
        fields = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input.
        raise ValueError(f"payload does not decode: {exc}") from None
    if type(fields) is not list or len(fields) not in (FIELD_COUNT, LEGACY_FIELD_COUNT):
        raise ValueError("payload is not a record array")
    return fields


__all__ = [
    "ANCHOR_KIND",
    "BODY",
    "CHECKPOINT_KIND",
    "FIELD_COUNT",
    "FORMAT_VERSION",
    "HASH_ALG",
    "HASH_ALGORITHM",
    "KEY_ADDED_KIND",
    "KEY_FP",
    "KEY_REVOKED_KIND",
    "KEY_ROTATED_KIND",
    "KIND",
    "LEDGER_KINDS",
    "LEGACY_FIELD_COUNT",
    "LEGACY_FORMAT_VERSION",
    "MIGRATED_KIND",
    "MODULE_KIND",
    "ORIGIN",
    "ORIGIN_PREFIX",
    "PREV_HASH",
    "SEQ",
    "SIGNATURE",
    "TIME_US",
    "TX_KIND",
    "VERSION",
    "pack_fields",
    "signing_message",
    "unpack_fields",
]
