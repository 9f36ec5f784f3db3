"""Ed25519 keys: generate, store (0600), load (file or environment), identify, and range.

Keys are written in the text form of Go's ``sumdb/note`` (the reference implementation
of C2SP signed notes), one line each::

    PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>     signing key
    <name>+<hex key id>+<base64(0x01 || 32-byte public key)>           verifier key

so a checkpoint's verifier key can be handed to any signed-note tool. The **key id** is
C2SP's: ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``, an identifier, not a
security property (a note names its signer by name and id; the verifier must already
hold the public key). Log records name a key by its **fingerprint** instead,
``SHA-256(0x01 || public key)``, which is collision resistant and independent of the
name.

**Algorithm ids** are recorded by name (:data:`HASH_ALGORITHM`,
:data:`SIGNATURE_ALGORITHM`); :func:`check_algorithm` refuses SHA-1 and MD5 by name
and anything it does not know, so nothing is silently unverifiable.

**Validity ranges** (:class:`KeyRing`): a key counts only for the sequence numbers it was
valid for. The ring is built from the log's key events in order (added, rotated,
revoked) and answers "which key may sign sequence number s"; journald's forward-secure
sealing once accepted signatures outside their key's epoch, which this refuses.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cosmictron.ledger.errors import AlgorithmRefused, KeyUnavailable, SignatureInvalid

HASH_ALGORITHM = "sha256"
"""The hash of records, leaves and tree nodes."""

SIGNATURE_ALGORITHM = "ed25519"
"""The signature of records and checkpoints."""

ALGORITHMS = {"hash": frozenset({"sha256"}), "signature": frozenset({"ed25519"})}
"""Algorithm ids this version verifies, by kind."""

WEAK_ALGORITHMS = frozenset({"sha1", "sha-1", "md5", "md4"})
"""Names refused as broken even though a library could compute them."""

SIGNATURE_TYPE_ED25519 = 0x01
"""C2SP signed-note signature type byte for Ed25519."""

KEY_ENV = "COSMICTRON_SIGNING_KEY"
"""Environment variable that may hold a signing key's text form (instead of a file)."""

_PRIVATE_PREFIX = "PRIVATE+KEY+"


def check_algorithm(kind: str, name: str) -> str:
    """Return ``name`` if this version verifies it as a ``kind`` algorithm, else refuse.

    Raises:
        AlgorithmRefused: the name is weak (SHA-1, MD5) or unknown for ``kind``.
    """
    lowered = name.lower()
    if lowered in WEAK_ALGORITHMS:
        raise AlgorithmRefused(name, f"{name} is too weak for a {kind} in an audit log")
    if lowered not in ALGORITHMS.get(kind, frozenset()):
        known = ", ".join(sorted(ALGORITHMS.get(kind, ()))) or "none"
        raise AlgorithmRefused(name, f"unknown {kind} algorithm (this version knows {known})")
    return lowered


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise KeyUnavailable(
            "malformed", f"key name {name!r} must be non-empty, printable, without spaces or '+'"
        )


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key id: ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``."""
    data = name.encode() + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + public_key
    return hashlib.sha256(data).digest()[:4]


def fingerprint(public_key: bytes) -> bytes:
    """A key's 32-byte identity in log records: ``SHA-256(0x01 || public key)``."""
    return hashlib.sha256(bytes([SIGNATURE_TYPE_ED25519]) + public_key).digest()


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeyUnavailable("malformed", f"{what} is not base64") from e


@dataclasses.dataclass(frozen=True)
class VerifierKey:
    """A public key with its note name: verifies signatures, names itself in records."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise KeyUnavailable("malformed", "an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @property
    def fingerprint(self) -> bytes:
        return fingerprint(self.public_key)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check an Ed25519 signature over ``message``; raise SignatureInvalid if bad."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            raise SignatureInvalid(
                "bad_signature", f"the signature by {self.name} does not verify"
            ) from None

    def to_text(self) -> str:
        """``name+hexid+base64(0x01 || public key)``: the C2SP verifier key."""
        material = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def from_text(cls, text: str) -> VerifierKey:
        """Parse a C2SP verifier key; the key id must match the name and key."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise KeyUnavailable("malformed", "a verifier key is name+keyid+key")
        name, hex_id, material = parts
        raw = _b64decode(material, "the verifier key")
        if raw[:1] != bytes([SIGNATURE_TYPE_ED25519]):
            raise AlgorithmRefused("unknown", "only Ed25519 (type 1) verifier keys are used")
        if len(raw) != 33:
            raise KeyUnavailable("malformed", "an Ed25519 verifier key is 33 bytes")
        key = cls(name, raw[1:])
        if hex_id != key.key_id.hex():
            raise KeyUnavailable("malformed", f"key id {hex_id} does not match the key")
        return key


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key and the name it signs notes as."""

    name: str
    seed: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.seed) != 32:
            raise KeyUnavailable("malformed", "an Ed25519 private key seed is 32 bytes")
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        object.__setattr__(self, "_private", private)
        public = private.public_key().public_bytes_raw()
        object.__setattr__(self, "verifier", VerifierKey(self.name, public))

    verifier: VerifierKey = dataclasses.field(init=False, repr=False, compare=False)

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        """A new random key (the OS's CSPRNG, through ``cryptography``)."""
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    @property
    def fingerprint(self) -> bytes:
        return self.verifier.fingerprint

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        private: Ed25519PrivateKey = object.__getattribute__(self, "_private")
        return private.sign(message)

    def to_text(self) -> str:
        """``PRIVATE+KEY+name+hexid+base64(0x01 || seed)``, as Go's sumdb/note writes it."""
        material = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + self.seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        """Parse the text form; the key id must match (a corrupted key is refused)."""
        text = text.strip()
        if not text.startswith(_PRIVATE_PREFIX):
            raise KeyUnavailable("malformed", "a signing key starts with PRIVATE+KEY+")
        parts = text[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise KeyUnavailable("malformed", "a signing key is PRIVATE+KEY+name+keyid+key")
        name, hex_id, material = parts
        raw = _b64decode(material, "the signing key")
        if raw[:1] != bytes([SIGNATURE_TYPE_ED25519]):
            raise AlgorithmRefused("unknown", "only Ed25519 (type 1) signing keys are used")
        if len(raw) != 33:
            raise KeyUnavailable("malformed", "an Ed25519 signing key is 33 bytes")
        key = cls(name, raw[1:])
        if hex_id != key.key_id.hex():
            raise KeyUnavailable("malformed", f"key id {hex_id} does not match the key")
        return key


def save_key(key: SigningKey, path: str | os.PathLike[str]) -> None:
    """Write ``key`` to ``path`` readable by its owner only (0600), atomically.

    The file is created 0600 before a byte is written (never chmod'ed afterwards, so it
    is never briefly readable), synced, then renamed over ``path``.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (key.to_text() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def load_key(path: str | os.PathLike[str]) -> SigningKey:
    """Read a key written by :func:`save_key`; refuse one others can read (like ssh).

    Raises:
        KeyUnavailable: ``missing``, ``permissions`` (group or others may read it) or
        ``malformed``.
    """
    source = Path(path)
    try:
        mode = source.stat().st_mode
        text = source.read_text()
    except FileNotFoundError:
        raise KeyUnavailable("missing", f"no signing key at {source}") from None
    except OSError as e:
        raise KeyUnavailable("missing", f"cannot read {source}: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyUnavailable(
            "permissions", f"{source} is readable by others ({mode & 0o777:o}); chmod 600 it"
        )
    return SigningKey.from_text(text)


def load_key_from_env(environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """The key in ``COSMICTRON_SIGNING_KEY``, or None when the variable is unset or empty.

    Raises:
        KeyUnavailable: ``env_malformed`` when it is set to something that is not a key.
    """
    env = os.environ if environ is None else environ
    text = env.get(KEY_ENV, "").strip()
    if not text:
        return None
    try:
        return SigningKey.from_text(text)
    except (KeyUnavailable, AlgorithmRefused) as e:
        raise KeyUnavailable("env_malformed", f"{KEY_ENV} does not hold a key: {e}") from None


def load_or_create_key(path: str | os.PathLike[str], name: str) -> SigningKey:
    """The key at ``path``, made (and saved 0600) on first use."""
    try:
        return load_key(path)
    except KeyUnavailable as e:
        if e.reason != "missing" or Path(path).exists():
            raise
    key = SigningKey.generate(name)
    save_key(key, path)
    return key


@dataclasses.dataclass
class KeyRange:
    """The sequence numbers a key may sign: ``first <= seq`` and ``seq <= last`` if set."""

    key: VerifierKey
    first: int
    last: int | None = None
    ended_at: int | None = None
    """The seq of the rotation or revocation record that set ``last`` (None: not ended)."""

    def covers(self, seq: int) -> bool:
        return self.first <= seq and (self.last is None or seq <= self.last)


class KeyRing:
    """Which key may sign which sequence number, built from the log's key events in order.

    - ``add(key, seq)``: the key signs from ``seq`` on.
    - ``rotate(old, new, seq)``: the record at ``seq`` (signed by both) is the last of
      ``old`` and the first of ``new``.
    - ``revoke(fingerprint, seq)``: the key signs nothing from ``seq`` on.

    Events must come in non-decreasing sequence order; anything else is a bug in the
    caller or a tampered log, and raises ``ValueError``.
    """

    def __init__(self) -> None:
        self._ranges: dict[bytes, KeyRange] = {}
        self._last_event = 0

    def _advance(self, seq: int) -> None:
        if seq < self._last_event:
            raise ValueError(f"key event at {seq} after one at {self._last_event}")
        self._last_event = seq

    def add(self, key: VerifierKey, seq: int) -> None:
        self._advance(seq)
        if key.fingerprint in self._ranges:
            raise ValueError(f"key {key.name} ({key.fingerprint.hex()[:16]}) was added before")
        self._ranges[key.fingerprint] = KeyRange(key, seq)

    def rotate(self, old: bytes, new: VerifierKey, seq: int) -> None:
        current = self._active(old, seq)
        self.add(new, seq)
        current.last = seq
        current.ended_at = seq

    def revoke(self, key_fingerprint: bytes, seq: int) -> None:
        current = self._active(key_fingerprint, seq)
        self._advance(seq)
        current.last = seq - 1
        current.ended_at = seq

    def _active(self, key_fingerprint: bytes, seq: int) -> KeyRange:
        found = self._ranges.get(key_fingerprint)
        if found is None or not found.covers(seq):
            raise ValueError(f"key {key_fingerprint.hex()[:16]} is not active at {seq}")
        return found

    def ranges(self) -> list[KeyRange]:
        return list(self._ranges.values())

    def as_of(self, seq: int) -> list[KeyRange]:
        """Copies of the ranges as the key events up to ``seq`` (included) left them.

        What an archive of records ``1..seq`` keeps, so a verifier can go on from
        ``seq + 1`` (``ledger/archived.py``).
        """
        found = []
        for r in self._ranges.values():
            if r.first > seq:
                continue
            if r.ended_at is not None and r.ended_at <= seq:
                found.append(KeyRange(r.key, r.first, r.last, r.ended_at))
            else:
                found.append(KeyRange(r.key, r.first))
        return found

    @classmethod
    def seeded(cls, ranges: list[KeyRange], seq: int) -> KeyRing:
        """A ring holding ``ranges`` (from :meth:`as_of`), ready for the events after ``seq``."""
        ring = cls()
        for r in ranges:
            ring._ranges[r.key.fingerprint] = KeyRange(r.key, r.first, r.last, r.ended_at)
        ring._last_event = seq
        return ring

    def key_for(self, key_fingerprint: bytes, seq: int) -> VerifierKey:
        """The key that may sign ``seq``, or SignatureInvalid saying why not."""
        found = self._ranges.get(key_fingerprint)
        if found is None:
            raise SignatureInvalid("unknown_key", f"no key {key_fingerprint.hex()[:16]} in the log")
        if not found.covers(seq):
            last = "on" if found.last is None else f"to {found.last}"
            raise SignatureInvalid(
                "key_out_of_range",
                f"key {found.key.name} signs sequence numbers {found.first} {last}, not {seq}",
            )
        return found.key

    def verify(self, key_fingerprint: bytes, seq: int, message: bytes, signature: bytes) -> None:
        """Check that the key was valid at ``seq`` and that it signed ``message``."""
        self.key_for(key_fingerprint, seq).verify(message, signature)
