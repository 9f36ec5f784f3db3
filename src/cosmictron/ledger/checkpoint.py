"""Checkpoints: signed tree heads in the C2SP tlog-checkpoint format.

A checkpoint is a signed note (:mod:`cosmictron.ledger.note`) whose text is::

    <origin>                  the log's identity, e.g. cosmictron/<database id>
    <tree size>               decimal, no leading zeros ("0" for the empty tree)
    <base64 root hash>        RFC 9162 root of the first <tree size> leaves, 32 bytes
    [extension lines]         optional, each non-empty

Cosmictron writes one extension line, ``time <unix microseconds>``: the commit time of
the last record covered, so a checkpoint says *when* as well as *what*, inside the
signed text (Rekor v1 kept its timestamp outside what was signed; we do not). Other
extension lines are kept and compared, never interpreted. The signing key's name is the
origin, as the spec recommends, and :func:`open_checkpoint` insists on it.

Malformed checkpoint text raises :class:`NoteMalformed` with a reason: ``bad_origin``,
``bad_tree_size``, ``bad_root_hash``, ``bad_extension``, ``too_few_lines``,
``bad_time``; a checkpoint of another log, ``wrong_origin``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable

from cosmictron.ledger.errors import NoteMalformed, SignatureInvalid
from cosmictron.ledger.merkle import HASH_SIZE
from cosmictron.ledger.note import sign_note, verify_note
from cosmictron.ledger.signing import SigningKey, VerifierKey

TIME_PREFIX = "time "


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A tree head: which log, how many leaves, their root, and extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or not self.origin.isprintable():
            raise NoteMalformed("bad_origin", f"origin {self.origin!r} is empty or not one line")
        if self.size < 0:
            raise NoteMalformed("bad_tree_size", f"tree size {self.size} is negative")
        if len(self.root_hash) != HASH_SIZE:
            raise NoteMalformed("bad_root_hash", f"a root hash has {HASH_SIZE} bytes")
        for line in self.extensions:
            if not line or "\n" in line or not line.isprintable():
                raise NoteMalformed("bad_extension", f"extension line {line!r} is not one line")

    @classmethod
    def with_time(cls, origin: str, size: int, root_hash: bytes, time_us: int) -> Checkpoint:
        """A checkpoint carrying Cosmictron's ``time`` extension line."""
        return cls(origin, size, root_hash, (f"{TIME_PREFIX}{time_us}",))

    @property
    def time_us(self) -> int | None:
        """The ``time`` extension in Unix microseconds, or None when there is none."""
        for line in self.extensions:
            if line.startswith(TIME_PREFIX):
                value = line[len(TIME_PREFIX) :]
                if not value.isdigit() or (value.startswith("0") and value != "0"):
                    raise NoteMalformed("bad_time", f"time extension {value!r} is not a number")
                return int(value)
        return None

    def to_text(self) -> str:
        """The note text (ending in a newline) that is signed."""
        root = base64.b64encode(self.root_hash).decode()
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse the note text of a checkpoint, strictly."""
        if not text.endswith("\n"):
            raise NoteMalformed("too_few_lines", "checkpoint text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteMalformed(
                "too_few_lines", f"a checkpoint has 3 lines or more, not {len(lines)}"
            )
        origin, size_text, root_text, *extensions = lines
        if (
            not size_text.isdigit()
            or not size_text.isascii()
            or (size_text.startswith("0") and size_text != "0")
        ):
            raise NoteMalformed("bad_tree_size", f"tree size {size_text!r} is not a decimal")
        try:
            root = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError):
            raise NoteMalformed("bad_root_hash", f"root hash {root_text!r} is not base64") from None
        if base64.b64encode(root).decode() != root_text:
            raise NoteMalformed("bad_root_hash", "root hash is not canonical base64")
        checkpoint = cls(origin, int(size_text), root, tuple(extensions))
        checkpoint.time_us  # noqa: B018 - validates the time extension, if any
        return checkpoint


def sign_checkpoint(checkpoint: Checkpoint, keys: SigningKey | Iterable[SigningKey]) -> str:
    """The signed note of ``checkpoint`` (one signature per key: two during a rotation)."""
    signers = [keys] if isinstance(keys, SigningKey) else list(keys)
    for key in signers:
        if key.name != checkpoint.origin:
            raise ValueError(f"key {key.name!r} does not sign as origin {checkpoint.origin!r}")
    return sign_note(checkpoint.to_text(), signers)


def open_checkpoint(
    note: bytes | str, trusted: VerifierKey | Iterable[VerifierKey], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and return it.

    A trusted key must have signed it under the checkpoint's origin as its key name; when
    ``origin`` is given the checkpoint must be of that log.

    Raises:
        NoteMalformed: the note or its checkpoint text is malformed, or (``wrong_origin``)
            it is another log's.
        SignatureInvalid: no trusted key signed it, or a trusted key's signature fails.
    """
    keys = [trusted] if isinstance(trusted, VerifierKey) else list(trusted)
    parsed, _ = verify_note(note, keys)
    checkpoint = Checkpoint.from_text(parsed.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteMalformed(
            "wrong_origin", f"checkpoint of {checkpoint.origin!r}, expected {origin!r}"
        )
    own = [k for k in keys if k.name == checkpoint.origin]
    if not own:
        raise SignatureInvalid(
            "no_trusted_signature", f"no trusted key is named for origin {checkpoint.origin!r}"
        )
    verify_note(note, own)
    return checkpoint
