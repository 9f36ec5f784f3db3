"""Anchor records: an RFC 3161 token for a checkpoint, as the log and its side file keep it.

An *anchor* proves that a signed checkpoint existed at the time a third party (a TSA)
says: the token stamps ``SHA-256(note)``, the checkpoint note's UTF-8 bytes exactly as
the checkpoint record holds them (:func:`checkpoint_digest`). The log holds one anchor
record per token (``ANCHOR_KIND``, body ``[time_us, checkpoint seq, token DER, TSA
URL]``, ``record_format.py``); once the log is synced past it, the same anchor is a line
of the side file ``<data_dir>/ledger/anchors`` (JSON: ``seq``, ``checkpoint_seq``,
``size``, ``tsa``, ``gen_time``, ``token`` in base64, ``note``), which outlives a
truncated or rolled-back log, as ``ledger/checkpoints`` does.

:func:`check_token` maps every way a stored token can fail to one of ``verify``'s
stable codes: ``anchor_mismatch`` (it stamps another checkpoint: a swapped token),
``anchor_untrusted`` (its TSA does not chain to a configured trust root) and
``anchor_invalid`` (anything else: a corrupted token, a wrong EKU, a bad signature).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509

ANCHORS_FILE = os.path.join("ledger", "anchors")
"""The anchors side file: one JSON object a line (see the module docstring)."""

_UNTRUSTED_REASONS = frozenset({"untrusted_chain"})
_MISMATCH_REASONS = frozenset({"imprint_mismatch"})


@dataclass(frozen=True)
class AnchorBody:
    """An anchor record's body, decoded."""

    time_us: int
    checkpoint_seq: int
    token: bytes
    tsa: str


def anchor_body(time_us: int, checkpoint_seq: int, token: bytes, tsa: str) -> list[Any]:
    """The body of an anchor record (what ``CommitLog.append`` writes)."""
    return [time_us, checkpoint_seq, token, tsa]


def parse_anchor_body(body: Any) -> AnchorBody:
    """Decode an anchor record's body; ValueError says what is wrong with it."""
    if type(body) is not list or len(body) != 4:
        raise ValueError("an anchor record's body is not [time, checkpoint seq, token, TSA]")
    time_us, checkpoint_seq, token, tsa = body
    if type(time_us) is not int or type(checkpoint_seq) is not int or checkpoint_seq < 1:
        raise ValueError("an anchor record's time or checkpoint seq is not a number")
    if type(token) is not bytes or not token or type(tsa) is not str:
        raise ValueError("an anchor record holds no token or no TSA URL")
    return AnchorBody(time_us, checkpoint_seq, token, tsa)


def checkpoint_digest(note: str) -> bytes:
    """What a TSA stamps for a checkpoint: SHA-256 of the signed note's bytes."""
    return hashlib.sha256(note.encode("utf-8")).digest()


def check_token(
    token: bytes,
    note: str | bytes,
    trust_roots: Sequence[x509.Certificate] | None,
    *,
    policy: str | None = None,
) -> tuple[str, str] | None:
    """Check a stored token against the checkpoint note it anchors (or its digest,
    :func:`checkpoint_digest`, given as bytes).

    ``trust_roots`` None checks everything but the chain to a root (the caller says so
    in its result). Returns None when the token checks, else ``(code, detail)``.
    """
    from cosmictron.ledger.errors import TimestampInvalid
    from cosmictron.ledger.tsa import verify_token

    digest = note if isinstance(note, bytes) else checkpoint_digest(note)
    try:
        verify_token(token, digest, trust_roots, policy=policy)
    except TimestampInvalid as exc:
        if exc.reason in _MISMATCH_REASONS:
            return "anchor_mismatch", f"the token stamps another checkpoint: {exc}"
        if exc.reason in _UNTRUSTED_REASONS:
            return "anchor_untrusted", str(exc)
        return "anchor_invalid", str(exc)
    return None


def side_entry(seq: int, body: AnchorBody, size: int, note: str, gen_time: str) -> dict[str, Any]:
    """The side-file line for the anchor record at ``seq``."""
    return {
        "seq": seq,
        "checkpoint_seq": body.checkpoint_seq,
        "size": size,
        "tsa": body.tsa,
        "gen_time": gen_time,
        "token": base64.b64encode(body.token).decode("ascii"),
        "note": note,
    }


def read_side_anchors(data_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The anchors side file's entries, oldest first; a torn last line is ignored."""
    path = os.path.join(os.fspath(data_dir), ANCHORS_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn append: the entry was never complete
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("seq"), int)
            and isinstance(entry.get("token"), str)
            and isinstance(entry.get("note"), str)
        ):
            entries.append(entry)
    return entries


def append_side_anchors(data_dir: str | os.PathLike[str], entries: list[dict[str, Any]]) -> None:
    """Append side-file lines and sync them (the log is synced past their records)."""
    if not entries:
        return
    text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
    path = os.path.join(os.fspath(data_dir), ANCHORS_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def token_response(token: bytes) -> bytes:
    """A granted ``TimeStampResp`` around a stored token: the ``.tsr`` file that
    ``openssl ts -verify -in`` reads without ``-token_in``."""
    from asn1crypto import cms

    from cosmictron.ledger.tsa import _TimeStampResp

    response = _TimeStampResp(
        {"status": {"status": "granted"}, "time_stamp_token": cms.ContentInfo.load(token)}
    )
    return response.dump()


def token_gen_time(token: bytes) -> str:
    """The token's ``genTime`` (ISO 8601, UTC), read without checking anything."""
    from asn1crypto import cms, tsp

    info = cms.ContentInfo.load(token)
    tst = tsp.TSTInfo.load(bytes(info["content"]["encap_content_info"]["content"]))
    gen_time = tst["gen_time"].native
    return str(gen_time.isoformat())


__all__ = [
    "ANCHORS_FILE",
    "AnchorBody",
    "anchor_body",
    "append_side_anchors",
    "check_token",
    "checkpoint_digest",
    "parse_anchor_body",
    "read_side_anchors",
    "side_entry",
    "token_gen_time",
    "token_response",
]
