"""Audit bundles: everything an auditor needs to check a database's history offline.

``export_bundle(data_dir, out)`` writes a directory (``cosmictron-cli export-audit``)::

    README.md                 the auditor's steps, with our CLI and with OpenSSL alone
    bundle.json               what is inside, and the SHA-256 of every other file
    log/<base>.log            the records, byte for byte as the database wrote them
    ledger/checkpoints        the side files (when the source had them)
    ledger/anchors
    checkpoints/<seq>.txt     every signed checkpoint note (C2SP), by its record's seq
    anchors/<seq>.tsr         every RFC 3161 token, as a granted TimeStampResp
    keys/public-keys.txt      the log's Ed25519 public keys (C2SP verifier keys)
    tsa/trust-roots.pem       the TSA trust roots the database was configured with
    tsa/signers.pem           the TSA certificates found in the tokens

A data directory whose older segments were archived (``log_retention = "archive"``,
``ledger/archived.py``) is exported whole when the archived segments are still in its
archive directory: they go into ``log/`` beside the live ones. When they are not, the
bundle holds the live records and ``ledger/archived.json``; ``verify`` resumes from it
and names the range, and ``bundle.json`` (``archived_through``) and the README say that
records ``1..N`` are not in the bundle.

The log is the evidence; every other file is derived from it (or, for the trust roots,
from the configuration) so that a tool other than ours can use it: ``openssl ts
-verify -data checkpoints/<c>.txt -in anchors/<a>.tsr -CAfile tsa/trust-roots.pem``
checks a token with nothing else.

``verify_bundle(out)`` (``cosmictron-cli verify <bundle>``) checks: every file's hash
(``bundle_file_changed``, ``bundle_file_missing``), the whole log as ``verify`` does
(with the bundle's checkpoint files as checkpoints kept outside the log), and each
``.tsr`` file against its checkpoint file and the trust roots, as OpenSSL would
(``anchor_mismatch``, ``anchor_untrusted``, ``anchor_invalid``). The keys and trust
roots inside a bundle are what the database says about itself: an auditor pins the ones
published to them (``--key``, ``--tsa-root``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from cosmictron.ledger.anchor import (
    ANCHORS_FILE,
    check_token,
    parse_anchor_body,
    token_gen_time,
    token_response,
)
from cosmictron.ledger.archived import ARCHIVED_FILE, read_archived
from cosmictron.ledger.logread import LogDamage, LogReader, list_segments
from cosmictron.ledger.record_format import ANCHOR_KIND, BODY, CHECKPOINT_KIND, KIND
from cosmictron.ledger.verifier import CHECKPOINTS_FILE, Problem, VerifyResult, verify

if TYPE_CHECKING:
    from cryptography import x509

    from cosmictron.ledger.signing import VerifierKey

BUNDLE_FORMAT = "cosmictron-audit-bundle"
BUNDLE_VERSION = 1
MANIFEST = "bundle.json"
ROOTS_FILE = "tsa/trust-roots.pem"
DEFAULT_ARCHIVE_DIR = os.path.join("archive", "log")
"""Where archived segments go unless ``log_archive_dir`` says otherwise (relative to
the data directory; ``durability/log_archive.py``)."""


@dataclass
class ExportSummary:
    """What ``export_bundle`` wrote."""

    path: str
    origin: str | None
    records: int
    checkpoints: int
    anchors: int
    keys: int
    trust_roots: bool
    archived_through: int = 0
    """Records ``1..archived_through`` were archived and are not in the bundle (0: the
    bundle holds every record)."""
    archive_included: int = 0
    """Records ``1..archive_included`` came from the archive directory (0: none)."""

    def to_document(self) -> dict[str, Any]:
        return dict(vars(self))


def is_bundle(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an audit bundle (it has a ``bundle.json`` of our format)."""
    try:
        with open(os.path.join(os.fspath(path), MANIFEST), encoding="utf-8") as file:
            return bool(json.load(file).get("format") == BUNDLE_FORMAT)
    except (OSError, ValueError, AttributeError):
        return False


def export_bundle(
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    trust_roots_pem: str | None,
    archive_dir: str | os.PathLike[str] | None = None,
) -> ExportSummary:
    """Write the audit bundle of the data directory ``data_dir`` to the new directory ``out``.

    ``archive_dir`` is where archived segments are (``log_archive_dir``; default
    ``<data_dir>/archive/log``): see the module docstring.

    Raises:
        FileExistsError: ``out`` exists and is not an empty directory.
        FileNotFoundError: ``data_dir`` holds no log.
    """
    source, target = Path(data_dir), Path(out)
    segments = list_segments(str(source / "log"))
    if not segments:
        raise FileNotFoundError(f"{str(source)!r} holds no commit log (log/)")
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{str(target)!r} exists and is not empty; name a new directory")
    for sub in ("log", "ledger", "checkpoints", "anchors", "keys", "tsa"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    cold, archived_through = _archived_segments(source, segments, archive_dir)
    for path in cold + [path for _, path in segments]:
        shutil.copyfile(path, target / "log" / os.path.basename(path))
    archive_included = segments[0][0] - 1 if cold else 0
    sides = [CHECKPOINTS_FILE, ANCHORS_FILE] + ([ARCHIVED_FILE] if archived_through else [])
    for side in sides:
        if (source / side).exists():
            shutil.copyfile(source / side, target / side)
    notes: dict[int, str] = {}
    anchors: list[dict[str, Any]] = []
    signers: dict[bytes, bytes] = {}
    records = 0
    try:
        for record in LogReader(str(target), archived_through + 1):
            records = record.seq
            fields = msgpack.unpackb(record.payload, raw=False, strict_map_key=False)
            if type(fields) is not list or len(fields) < 5:
                continue
            if fields[KIND] == CHECKPOINT_KIND and _is_note_body(fields[BODY]):
                notes[record.seq] = fields[BODY][1]
                (target / "checkpoints" / f"{record.seq}.txt").write_text(
                    fields[BODY][1], encoding="utf-8"
                )
            elif fields[KIND] == ANCHOR_KIND:
                anchors.append(_export_anchor(target, record.seq, fields[BODY], signers))
    except LogDamage:
        pass  # the bundle holds the log as it is; verify reports the damage
    except ValueError:
        pass
    result = verify(target)
    (target / "keys" / "public-keys.txt").write_text(
        "".join(k + "\n" for k in result.keys), encoding="utf-8"
    )
    if trust_roots_pem:
        (target / ROOTS_FILE).write_text(trust_roots_pem, encoding="ascii")
    if signers:
        (target / "tsa" / "signers.pem").write_bytes(b"".join(signers.values()))
    (target / "README.md").write_text(
        readme(
            result.origin,
            records,
            len(notes),
            len(anchors),
            bool(trust_roots_pem),
            archived_through,
            result.joined_at,
        ),
        encoding="utf-8",
    )
    files = {
        str(p.relative_to(target)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(target.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "origin": result.origin,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "records": records,
        "checkpoints": len(notes),
        "anchors": anchors,
        "keys": result.keys,
        "trust_roots": ROOTS_FILE if trust_roots_pem else None,
        "archived_through": archived_through,
        "archive_included": archive_included,
        "files": files,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return ExportSummary(
        str(target),
        result.origin,
        records,
        len(notes),
        len(anchors),
        len(result.keys),
        bool(trust_roots_pem),
        archived_through,
        archive_included,
    )


def _archived_segments(
    source: Path, segments: list[tuple[int, str]], archive_dir: str | os.PathLike[str] | None
) -> tuple[list[str], int]:
    """The archived segments to put in the bundle, and the last record left out.

    Returns ``(paths, 0)`` when ``log/`` starts at record 1 or the archive directory
    holds every segment before it (the bundle is then whole), else ``([], N)``: records
    ``1..N`` are not in the bundle, which carries ``ledger/archived.json`` instead.
    """
    first_live = segments[0][0]
    if first_live == 1:
        return [], 0
    try:
        archived = read_archived(str(source))
    except ValueError:
        archived = None  # verify reports archive_invalid from the copy
    through = archived.through if archived is not None else first_live - 1
    directory = os.fspath(archive_dir) if archive_dir is not None else None
    cold = [
        path
        for base, path in list_segments(directory or str(source / DEFAULT_ARCHIVE_DIR))
        if base < first_live
    ]
    # Segments are named by their first record: the archive is whole from record 1 when
    # its first segment is there (a segment removed from its middle would be a gap the
    # bundle's verify reports as missing records, log_damaged).
    if cold and os.path.basename(cold[0]) == f"{1:020d}.log":
        return cold, 0
    return [], through


def _is_note_body(body: Any) -> bool:
    return type(body) is list and len(body) > 1 and type(body[1]) is str


def _export_anchor(
    target: Path, seq: int, body: Any, signers: dict[bytes, bytes]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"seq": seq, "token": f"anchors/{seq}.tsr"}
    try:
        anchor = parse_anchor_body(body)
    except ValueError as exc:
        entry["error"] = str(exc)
        return entry
    entry.update(
        checkpoint_seq=anchor.checkpoint_seq,
        checkpoint=f"checkpoints/{anchor.checkpoint_seq}.txt",
        tsa=anchor.tsa,
    )
    try:
        (target / "anchors" / f"{seq}.tsr").write_bytes(token_response(anchor.token))
        entry["gen_time"] = token_gen_time(anchor.token)
        for der in _token_certificates(anchor.token):
            signers.setdefault(hashlib.sha256(der).digest(), _pem(der))
    except (ValueError, TypeError, KeyError) as exc:  # a damaged token: verify says so
        (target / "anchors" / f"{seq}.tsr").write_bytes(anchor.token)
        entry["error"] = f"the token does not parse: {exc}"
    return entry


def _token_certificates(token: bytes) -> list[bytes]:
    from asn1crypto import cms

    info = cms.ContentInfo.load(token)
    return [
        c.chosen.dump() for c in info["content"]["certificates"] or [] if c.name == "certificate"
    ]


def _pem(der: bytes) -> bytes:
    import base64

    text = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (
        "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
    ).encode()


def _token_of(tsr: bytes) -> bytes:
    """The token inside a ``.tsr`` file (a TimeStampResp; a bare token is taken as is)."""
    from cosmictron.ledger.tsa import _TimeStampResp

    try:
        response = _TimeStampResp.load(tsr)
        token = response["time_stamp_token"]
        if token.native is not None and response["status"]["status"].native == "granted":
            return bytes(token.dump())
    except (ValueError, TypeError, KeyError):
        pass
    return tsr


def verify_bundle(
    path: str | os.PathLike[str],
    *,
    keys: Iterable[VerifierKey] | None = None,
    tsa_roots: Sequence[x509.Certificate] | None = None,
) -> VerifyResult:
    """Verify an audit bundle offline (see the module docstring).

    ``tsa_roots`` None uses the bundle's own ``tsa/trust-roots.pem`` (if any).
    """
    bundle = Path(path)
    manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
    problems: list[Problem] = []
    for name, digest in sorted(manifest.get("files", {}).items()):
        file = bundle / name
        if not file.is_file():
            problems.append(Problem("bundle_file_missing", 0, f"{name} is not in the bundle"))
        elif hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            problems.append(Problem("bundle_file_changed", 0, f"{name} is not the file exported"))
    if tsa_roots is None and (bundle / ROOTS_FILE).is_file():
        from cosmictron.ledger.tsa import load_certificates

        tsa_roots = load_certificates((bundle / ROOTS_FILE).read_bytes())
    notes = [p.read_text(encoding="utf-8") for p in sorted((bundle / "checkpoints").glob("*.txt"))]
    result = verify(bundle, keys=keys, checkpoints=notes, tsa_roots=tsa_roots)
    for entry in manifest.get("anchors", []):
        seq = int(entry.get("seq", 0))
        try:
            token = _token_of((bundle / f"anchors/{seq}.tsr").read_bytes())
            note = (bundle / f"checkpoints/{int(entry['checkpoint_seq'])}.txt").read_text(
                encoding="utf-8"
            )
        except (OSError, KeyError, ValueError) as exc:
            problems.append(Problem("anchor_invalid", seq, f"anchors/{seq}.tsr: {exc}"))
            continue
        found = check_token(token, note, tsa_roots)
        if found is not None:
            problems.append(Problem(found[0], seq, f"anchors/{seq}.tsr: {found[1]}"))
    if problems:
        merged = sorted(result.problems + problems, key=lambda p: p.seq)
        first = merged[0]
        result.problems = merged
        result.ok = False
        result.code, result.first_bad_seq, result.detail = first.code, first.seq, first.detail
    return result


def readme(
    origin: str | None,
    records: int,
    checkpoints: int,
    anchors: int,
    roots: bool,
    archived_through: int = 0,
    joined_at: int = 0,
) -> str:
    """The bundle's README: what is in it, and how to check it step by step."""
    why = (
        f"The cluster node it was exported from joined the database from a snapshot at "
        f"record {joined_at}: records 1..{joined_at} were never in its log"
        + (", and it archived the rest of them" if archived_through > joined_at else "")
        + "."
        if joined_at
        else """The database archived their
log segments (`log_retention = "archive"`) and they were not in its archive directory
when the bundle was made."""
    )
    roots_line = (
        "`tsa/trust-roots.pem` holds the TSA trust roots the database was configured with."
        if roots
        else "No TSA trust root was exported: get the TSA's CA certificate from the TSA."
    )
    archived_line = (
        f"""

**Records 1..{archived_through} are not in this bundle.** {why}
`log/` starts at record {archived_through + 1}; `ledger/archived.json` holds what
verification resumes from (the last archived record's hash and time, the Merkle tree's
compact range there, the keys), and the first signed
checkpoint after it vouches for it. The counts above and the checks below cover the
records in the bundle; to check the archived ones, ask for their segments and a bundle
made with them."""
        if archived_through
        else ""
    )
    return f"""# Audit bundle of `{origin}`

{records} records, {checkpoints} signed checkpoints, {anchors} RFC 3161 anchors, exported
by `cosmictron-cli export-audit`. The log (`log/`) is the evidence; the other files are
taken from it so that other tools can check it too. `bundle.json` lists every file with
its SHA-256. {roots_line}{archived_line}

Before you start, compare `keys/public-keys.txt` with the public keys the operator
published to you, and `tsa/trust-roots.pem` with the TSA's own CA certificate: a bundle
can only vouch for itself; what you pin is what makes it evidence.

## With Cosmictron's CLI

    cosmictron-cli verify . --key "$(head -1 published-key.txt)" --tsa-root tsa-ca.pem

checks every file's hash, the hash chain, the Merkle tree against every signed
checkpoint, every signature against its key's range, every anchor token (and that its
TSA chains to the root you give), and that the log is not shorter than any checkpoint or
anchor. It prints `ok: ...` and exits 0, or one line per problem (`<code> at seq <n>`)
and exits 1.

## With OpenSSL alone

Each anchor `anchors/<a>.tsr` stamps the checkpoint `checkpoints/<c>.txt` that
`bundle.json` names for it (`"anchors"`: `seq` a, `checkpoint_seq` c):

    openssl ts -verify -data checkpoints/<c>.txt -in anchors/<a>.tsr -CAfile tsa/trust-roots.pem

prints `Verification: OK`. `openssl ts -reply -in anchors/<a>.tsr -text` shows its time.
A checkpoint's Ed25519 signature is checked with `openssl pkeyutl -verify` as the
ledger guide (docs/guide/ledger.md, "With OpenSSL alone") shows.
"""


__all__ = [
    "BUNDLE_FORMAT",
    "ExportSummary",
    "export_bundle",
    "is_bundle",
    "readme",
    "verify_bundle",
]
