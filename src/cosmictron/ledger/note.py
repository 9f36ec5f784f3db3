"""C2SP signed notes (c2sp.org/signed-note): text, a blank line, signature lines.

::

    <text, one or more lines, ending in a newline>
    <blank line>
    — <key name> base64(4-byte key id || signature)
    …

Parsing is strict, and every refusal is a :class:`NoteMalformed` with a ``reason``:
``not_utf8``, ``control_character``, ``no_signatures`` (no blank line before a
signature block), ``bad_signature_line``, ``bad_key_name``, ``bad_base64``,
``too_many_signatures``, ``empty_text``. Verification follows the spec: signatures from
keys we do not hold (name and id must both match) are ignored; one from a key we hold
that does not verify rejects the whole note; a note with no verified trusted signature is
rejected.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable, Sequence

from cosmictron.ledger.errors import NoteMalformed, SignatureInvalid
from cosmictron.ledger.signing import SigningKey, VerifierKey

EM_DASH = "\u2014"
MAX_SIGNATURES = 100
"""More signature lines than this and the note is refused (the spec asks for >= 16)."""


@dataclasses.dataclass(frozen=True)
class NoteSignature:
    """One signature line: who (name and 4-byte key id) and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        encoded = base64.b64encode(self.key_id + self.signature).decode()
        return f"{EM_DASH} {self.name} {encoded}\n"


@dataclasses.dataclass(frozen=True)
class Note:
    """A parsed note: its text (with the final newline) and its signatures, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def _check_text(text: str) -> None:
    if not text or not text.endswith("\n"):
        raise NoteMalformed("empty_text", "the note text must be non-empty and end in a newline")
    for n, c in enumerate(text):
        if c < " " and c != "\n":
            raise NoteMalformed("control_character", f"control character {ord(c):#x} at {n}")


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def parse_note(data: bytes | str) -> Note:
    """Split a signed note into its text and signatures, checking the format strictly."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NoteMalformed("not_utf8", f"byte {e.start} is not UTF-8") from None
    _check_text(data)
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteMalformed("no_signatures", "no blank line separates the text from signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block:
        raise NoteMalformed("no_signatures", "the note has no signature lines")
    lines = block.split("\n")
    if lines[-1] != "":
        raise NoteMalformed("bad_signature_line", "the last signature line has no newline")
    lines.pop()
    if len(lines) > MAX_SIGNATURES:
        raise NoteMalformed("too_many_signatures", f"{len(lines)} > {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH:
            raise NoteMalformed("bad_signature_line", f"not '— name signature': {line[:80]!r}")
        name, encoded = parts[1], parts[2]
        if not _valid_name(name):
            raise NoteMalformed("bad_key_name", f"key name {name!r} is empty or has a space or +")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise NoteMalformed("bad_base64", f"the signature by {name} is not base64") from None
        if len(raw) < 5:
            raise NoteMalformed("bad_base64", f"the signature by {name} is too short")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def sign_note(text: str, keys: Sequence[SigningKey]) -> str:
    """The signed note of ``text`` by each of ``keys`` (Ed25519 over the text's bytes)."""
    _check_text(text)
    if not keys:
        raise ValueError("a signed note needs at least one key")
    message = text.encode()
    sigs = tuple(NoteSignature(k.name, k.key_id, k.sign(message)) for k in keys)
    return Note(text, sigs).to_text()


def verify_note(
    data: bytes | str, trusted: Iterable[VerifierKey]
) -> tuple[Note, list[VerifierKey]]:
    """Parse and verify a note; return it and the trusted keys whose signatures verified.

    Raises:
        NoteMalformed: the format is wrong.
        SignatureInvalid: ``bad_signature`` (a trusted key's signature fails) or
            ``no_trusted_signature`` (no trusted key signed).
    """
    note = parse_note(data)
    keys = {(k.name, k.key_id): k for k in trusted}
    message = note.text.encode()
    verified: list[VerifierKey] = []
    for sig in note.signatures:
        key = keys.get((sig.name, sig.key_id))
        if key is None:
            continue
        key.verify(message, sig.signature)
        if key not in verified:
            verified.append(key)
    if not verified:
        names = ", ".join(sorted({k.name for k in keys.values()})) or "none given"
        raise SignatureInvalid("no_trusted_signature", f"no signature by a trusted key ({names})")
    return note, verified
