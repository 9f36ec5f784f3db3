"""Verifying a subscription's stream as it arrives, with the database's public key alone.

``connect(..., ledger_key=...)`` subscribes with ``"ledger": true``
(docs/reference/websocket.md, "Verifying as you go"); the server then sends each
``TransactionUpdate`` with its record's ``seq`` and RFC 9162 ``leaf_hash``, and after
each signed checkpoint a ``LedgerCheckpoint``. A :class:`LedgerVerifier` checks, for each
checkpoint: its C2SP signature by the pinned key; that it extends the last one verified
(an RFC 9162 consistency proof: the server cannot rewrite what it already showed, even
across reconnections, because the client names the size it verified in
``ledger_from_size``); and that every update received before it is a leaf of it
(inclusion proofs against its root). Any failure raises :class:`LedgerVerificationError`
(the client reports it to ``on_error`` callbacks and stops trusting the stream).

This is a second implementation of the RFC 9162 verifiers and of C2SP note signatures,
written apart from the server's ``cosmictron.ledger`` on purpose: the SDK imports no
server layer, and a verifier that shares the prover's code shares its bugs. The leaf
hash is the server's word until a checkpoint covers it: the client sees only the rows
its queries select, not the whole record, so it cannot hash the record itself; what it
gets is that the update it saw is, forever, the leaf at ``seq`` of the signed log.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cosmictron.errors import VerificationFailed

_NODE = b"\x01"


class LedgerVerificationError(VerificationFailed):
    """The stream did not verify: ``reason`` names the check, ``seq`` where."""

    code = "ledger_verification_failed"

    def __init__(self, reason: str, seq: int, message: str) -> None:
        super().__init__(f"ledger stream rejected at seq {seq} ({reason}): {message}")
        self.reason = reason
        self.seq = seq


@dataclass(frozen=True)
class PublicKey:
    """A C2SP verifier key, ``name+hexid+base64(0x01 || Ed25519 public key)``."""

    name: str
    key_id: bytes
    raw: bytes

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        try:
            name, hex_id, material = text.strip().split("+", 2)
            decoded = base64.b64decode(material, validate=True)
        except ValueError as exc:
            raise LedgerVerificationError("bad_key", 0, f"not a verifier key: {exc}") from None
        if len(decoded) != 33 or decoded[0] != 1:
            raise LedgerVerificationError("bad_key", 0, "not an Ed25519 (type 1) verifier key")
        key_id = hashlib.sha256(name.encode() + b"\n" + decoded).digest()[:4]
        if key_id.hex() != hex_id:
            raise LedgerVerificationError("bad_key", 0, "the key id does not match the key")
        return cls(name, key_id, decoded[1:])


def open_note(note: str, key: PublicKey, seq: int) -> tuple[int, bytes]:
    """Check a checkpoint note's signature by ``key``; return its tree size and root."""
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise LedgerVerificationError("bad_note", seq, "no signature block")
    text += "\n"
    verified = False
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or parts[1] != key.name:
            continue
        blob = base64.b64decode(parts[2])
        if blob[:4] != key.key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.raw).verify(blob[4:], text.encode())
        except InvalidSignature:
            raise LedgerVerificationError(
                "bad_signature", seq, "the checkpoint's signature does not verify"
            ) from None
        verified = True
    if not verified:
        raise LedgerVerificationError("unsigned", seq, f"no signature by {key.name}")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or lines[0] != key.name or not lines[1].isdigit():
        raise LedgerVerificationError("bad_note", seq, "not a checkpoint of this log")
    return int(lines[1]), base64.b64decode(lines[2])


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def inclusion_root(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root a leaf and its path imply (None: a malformed path)."""
    if not 0 <= index < size:
        return None
    fn, sn, root = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            root = _node(sibling, root)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            root = _node(root, sibling)
        fn, sn = fn >> 1, sn >> 1
    return root if sn == 0 else None


def consistent(old_size: int, new_size: int, old: bytes, new: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: whether the tree of ``old_size`` is a prefix of ``new_size``'s."""
    if old_size == new_size:
        return not proof and old == new
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first, second = _node(c, first), _node(c, second)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = _node(second, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and first == old and second == new


@dataclass
class LedgerVerifier:
    """Follows one stream: the updates' leaves, then each checkpoint that covers them."""

    key: PublicKey
    size: int = 0
    """The tree size of the last verified checkpoint (0: none yet)."""
    root: bytes = b""
    verified_seqs: list[int] = field(default_factory=list)
    """The seqs of updates proven to be leaves of a verified checkpoint, in order."""
    pending: dict[int, bytes] = field(default_factory=dict)
    """Updates received (seq -> leaf hash) not yet covered by a checkpoint."""
    checkpoints: int = 0
    unproven: list[int] = field(default_factory=list)
    """Seqs received on a connection that was lost before a checkpoint covered them: the
    new connection's checkpoints do not prove them (check them with the audit route)."""

    @classmethod
    def for_key(cls, key_text: str) -> LedgerVerifier:
        return cls(PublicKey.from_text(key_text))

    def new_connection(self) -> None:
        """A reconnection: what the old connection left unproven stays unproven."""
        self.unproven.extend(sorted(self.pending))
        self.pending.clear()

    def on_update(self, body: dict[str, Any]) -> None:
        """Remember a ``TransactionUpdate``'s ``ledger`` field; refuse one without it."""
        ledger = body.get("ledger")
        seq = int(body.get("tx_offset") or 0)
        if not isinstance(ledger, dict) or ledger.get("seq") != seq:
            raise LedgerVerificationError("missing_leaf", seq, "an update without its leaf hash")
        # An update may arrive after a checkpoint that covers it (the checkpoint record is
        # written right after its transaction's): the server then sends that checkpoint
        # again, right after the update, with its proof.
        self.pending[seq] = bytes.fromhex(ledger["leaf_hash"])

    def on_checkpoint(self, body: dict[str, Any]) -> None:
        """Check a ``LedgerCheckpoint`` (signature, consistency, inclusions) and advance."""
        seq = int(body["seq"])
        size, root = open_note(body["note"], self.key, seq)
        if size != body["size"] or root.hex() != body["root"]:
            raise LedgerVerificationError("bad_note", seq, "the message and its note disagree")
        if self.size:
            if size < self.size:
                raise LedgerVerificationError(
                    "rollback", seq, f"checkpoint of {size} records after one of {self.size}"
                )
            proof = body.get("consistency")
            if body.get("old_size") != self.size or proof is None:
                raise LedgerVerificationError(
                    "no_consistency", seq, f"no consistency proof from size {self.size}"
                )
            if not consistent(self.size, size, self.root, root, [bytes.fromhex(h) for h in proof]):
                raise LedgerVerificationError(
                    "inconsistent",
                    seq,
                    f"the tree of {size} does not extend the one of {self.size}",
                )
        proven = {}
        for entry in body.get("inclusion") or []:
            s, leaf = int(entry["seq"]), bytes.fromhex(entry["leaf_hash"])
            path = [bytes.fromhex(h) for h in entry["proof"]]
            if inclusion_root(s - 1, size, leaf, path) != root:
                raise LedgerVerificationError("not_included", s, f"leaf {s} is not in the tree")
            proven[s] = leaf
        for s, leaf in sorted(self.pending.items()):
            if s > size:
                continue
            if proven.get(s) != leaf:
                raise LedgerVerificationError(
                    "not_included", s, f"the update at {s} was not proven in checkpoint {size}"
                )
            self.verified_seqs.append(s)
            del self.pending[s]
        self.size, self.root = size, root
        self.checkpoints += 1


__all__ = ["LedgerVerificationError", "LedgerVerifier", "PublicKey"]
