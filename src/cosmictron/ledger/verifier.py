"""Verification: check a data directory's whole history, and say where it first goes wrong.

``verify(path)`` reads the log (``logread.py``, independent of the database's own
reader) in one pass and checks, for every record in order (``RecordChecker``):

1. it decodes as a record (``record_malformed``); a version-1 (0.8) record is accepted
   only before the migration marker (``legacy_record``);
2. its hash algorithm is SHA-256 (``algorithm_refused``: SHA-1 or an unknown name);
3. it is this log's (``wrong_origin``), at its position (``seq_mismatch``), names its
   predecessor's hash (``chain_broken``) and its time does not go backwards
   (``time_backwards``);
4. its signature, if any, verifies with a key valid at its sequence number
   (``signature_invalid``, ``key_out_of_range``, ``unknown_key``; a rotation needs both
   keys' signatures: ``rotation_unsigned``; other key events: ``key_event_invalid``);
5. a checkpoint record's note is signed by a key valid there and names this log
   (``checkpoint_invalid``), and its tree size and root are the tree's over every record
   before it (``checkpoint_mismatch``);
6. an anchor record's RFC 3161 token stamps the checkpoint record it names
   (``anchor_mismatch``: a swapped token, or a checkpoint that is not there), chains to a
   given TSA trust root (``anchor_untrusted``) and passes every other check of
   ``tsa.verify_token`` (``anchor_invalid``: a corrupted token).

Then every checkpoint kept outside the log (the side file ``ledger/checkpoints``, and any
the caller trusts, such as one an auditor saved earlier) must be signed by a log key and
agree with the log's tree at its size (``checkpoint_fork``), and the log must not be
shorter than any of them (``truncated`` for the side file, ``rollback`` for a trusted
one: the whole data directory is older than a checkpoint someone has seen).
Anchors kept in the side file ``ledger/anchors`` must be in the log too: the log may
not end before one (``truncated``), and the record there must hold the same token
(``anchor_mismatch``).

When segments were archived below a snapshot (``ledger/archived.py``), the pass starts
at the first record still in ``log/``, seeded from ``ledger/archived.json``, and the
result names the archived range (``archived_through``) instead of a missing one; a
manifest that does not parse is ``archive_invalid``.

Each problem is a :class:`Problem` (stable ``code``, first bad ``seq``, ``detail``);
:class:`VerifyResult` gives the first one. Once the chain is broken the checker
re-anchors on what it reads, so one deleted record is one problem, not thousands.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

from cosmictron.ledger.anchor import (
    check_token,
    checkpoint_digest,
    parse_anchor_body,
    read_side_anchors,
)
from cosmictron.ledger.archived import ArchivedRange, read_archived
from cosmictron.ledger.chain import GENESIS_HASH
from cosmictron.ledger.checkpoint import Checkpoint, open_checkpoint
from cosmictron.ledger.errors import AlgorithmRefused, NoteMalformed, SignatureInvalid
from cosmictron.ledger.logread import LogDamage, LogReader, list_segments
from cosmictron.ledger.merkle import LEAF_PREFIX, Frontier
from cosmictron.ledger.record_format import (
    ANCHOR_KIND,
    BODY,
    CHECKPOINT_KIND,
    FIELD_COUNT,
    FORMAT_VERSION,
    HASH_ALG,
    HASH_ALGORITHM,
    KEY_ADDED_KIND,
    KEY_FP,
    KEY_REVOKED_KIND,
    KEY_ROTATED_KIND,
    KIND,
    LEDGER_KINDS,
    LEGACY_FIELD_COUNT,
    LEGACY_FORMAT_VERSION,
    MIGRATED_KIND,
    MODULE_KIND,
    ORIGIN,
    PREV_HASH,
    SEQ,
    SIGNATURE,
    TIME_US,
    TX_KIND,
    VERSION,
    signing_message,
    unpack_fields,
)
from cosmictron.ledger.signing import KeyRing, VerifierKey, check_algorithm

if TYPE_CHECKING:
    from cryptography import x509

CHECKPOINTS_FILE = os.path.join("ledger", "checkpoints")
"""The side file: one JSON object a line, ``{"seq", "size", "note", "origin", "keys"}``."""

PROBLEMS_MAX = 100
"""Problems kept in a result; the rest are counted in ``problems_dropped``."""

KNOWN_KINDS = frozenset({TX_KIND, MODULE_KIND}) | LEDGER_KINDS
_PLAIN_KINDS = frozenset({TX_KIND, MODULE_KIND})
_unpackb = msgpack.unpackb
_sha256 = hashlib.sha256
_leaf_context = hashlib.sha256(LEAF_PREFIX)


@dataclass(frozen=True)
class Problem:
    """One thing wrong: a stable code, the first sequence number it affects, and why."""

    code: str
    seq: int
    detail: str

    def line(self) -> str:
        return f"{self.code} at seq {self.seq}: {self.detail}"


@dataclass
class VerifyResult:
    """What ``verify`` found: ``ok`` and, when not ok, the first problem's code and seq."""

    ok: bool
    code: str
    first_bad_seq: int | None
    detail: str
    problems: list[Problem] = field(default_factory=list)
    records: int = 0
    checkpoints: int = 0
    legacy_through: int = 0
    origin: str | None = None
    keys: list[str] = field(default_factory=list)
    problems_dropped: int = 0
    archived_through: int = 0
    """Records ``1..archived_through`` were archived below a snapshot (not read; their
    leaves are in the tree the later checkpoints sign); 0 when none were."""
    joined_at: int = 0
    """Cluster mode: this node joined from a snapshot at this offset, so records
    ``1..joined_at`` were never in its log; the pass started from the ledger state the
    snapshot carried (chain head, tree's compact range, keys), which the first later
    checkpoint's signature vouches for. 0 when it did not."""
    anchors: int = 0
    anchors_rooted: bool = True
    """False when anchors were found but no TSA trust root was given: their tokens were
    checked except for the chain to a root."""

    def to_document(self) -> dict[str, Any]:
        """The JSON form (``cosmictron-cli verify --json`` and the audit route)."""
        return {
            "ok": self.ok,
            "code": self.code,
            "first_bad_seq": self.first_bad_seq,
            "detail": self.detail,
            "problems": [{"code": p.code, "seq": p.seq, "detail": p.detail} for p in self.problems],
            "problems_dropped": self.problems_dropped,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "legacy_through": self.legacy_through,
            "origin": self.origin,
            "keys": self.keys,
            "archived_through": self.archived_through,
            "joined_at": self.joined_at,
            "anchors": self.anchors,
            "anchors_rooted": self.anchors_rooted,
        }

    def lines(self) -> list[str]:
        """One line per problem (or one ``ok`` line), as ``cosmictron-cli verify`` prints."""
        if self.ok:
            legacy = (
                f"; records 1..{self.legacy_through} are 0.8 records (hash chain only)"
                if self.legacy_through
                else ""
            )
            return [ok_line(self.to_document()) + legacy]
        lines = [p.line() for p in self.problems]
        if self.problems_dropped:
            lines.append(f"... and {self.problems_dropped} more problems")
        return lines


def ok_line(document: dict[str, Any]) -> str:
    """The line ``verify`` prints when everything checks (from ``to_document()``)."""
    anchors = document.get("anchors", 0)
    through = document.get("archived_through", 0)
    joined = document.get("joined_at", 0)
    archived = (
        f"; records 1..{through} are archived (their leaves are in the tree the later "
        "checkpoints sign)"
        if through > joined
        else ""
    )
    if joined:
        archived = (
            f"; verified from the ledger state of the snapshot at {joined} this node joined "
            f"from (records 1..{joined} were never in its log; the later checkpoints sign "
            f"the tree they are leaves of){archived}"
        )
    if not anchors:
        return (
            f"ok: {document['records']} records, {document['checkpoints']} checkpoints "
            f"verified{archived}"
        )
    unrooted = (
        ""
        if document.get("anchors_rooted", True)
        else " (TSA chains not checked: no TSA trust root given, see --tsa-root)"
    )
    return (
        f"ok: {document['records']} records, {document['checkpoints']} checkpoints, "
        f"{anchors} anchors verified{unrooted}{archived}"
    )


class VerifyProblem(Exception):
    """Raised inside a check; the checker turns it into a :class:`Problem`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class CheckpointSeen:
    """A checkpoint the log wrote: its record's seq, its tree size and root."""

    seq: int
    size: int
    root: bytes


class RecordChecker:
    """Checks records one at a time, in log order, keeping what the next check needs.

    Args:
        origin: the log's origin, or None to take it from the first version-2 record.
        prev_hash: the hash the next record must name.
        next_seq: the sequence number of the next record.
        ring: the keys and their ranges so far.
        last_time_us: the previous record's time.
        tree_append: adds a leaf hash to the tree the checkpoints are checked against.
        tree_root: that tree's root and size.
        trusted_keys: if given, every key the log adds without a rotation must be one
            of them (an auditor pins the database's public key).
    """

    def __init__(
        self,
        *,
        origin: str | None = None,
        prev_hash: bytes = GENESIS_HASH,
        next_seq: int = 1,
        ring: KeyRing | None = None,
        last_time_us: int = 0,
        tree_append: Callable[[bytes], object] | None = None,
        tree_root: Callable[[], tuple[int, bytes]] | None = None,
        trusted_keys: Iterable[VerifierKey] | None = None,
        migrated: bool = False,
        anchors: AnchorChecks | None = None,
    ) -> None:
        self.origin = origin
        self.prev_hash = prev_hash
        self.next_seq = next_seq
        self.ring = ring if ring is not None else KeyRing()
        self.last_time_us = last_time_us
        self.frontier = Frontier()
        self.tree_append = tree_append if tree_append is not None else self.frontier.append
        self.tree_root = tree_root if tree_root is not None else self._frontier_root
        self.trusted = None if trusted_keys is None else {k.fingerprint: k for k in trusted_keys}
        self.seen_v2 = migrated
        self.legacy_through = 0
        self.checkpoints: list[CheckpointSeen] = []
        self.keys: list[VerifierKey] = []
        self.anchors = anchors
        """Checks anchor records' tokens when given (``verify``); the open check skips
        them (a TSA's token is checked when it is written, and by ``verify``)."""

    def _frontier_root(self) -> tuple[int, bytes]:
        return self.frontier.size, self.frontier.root()

    def resume(self, archived: ArchivedRange) -> None:
        """Go on after ``archived.through`` from its manifest (``ledger/archived.py``):
        the chain, origin, time and keys there. Its tree state is the caller's (a
        verifier's frontier, or the database's own tree)."""
        self.origin = archived.origin
        self.prev_hash = archived.last_hash
        self.next_seq = archived.through + 1
        self.last_time_us = archived.last_time_us
        self.seen_v2 = True
        self.ring = KeyRing.seeded(archived.keys, archived.through)
        self.keys = [r.key for r in archived.keys]

    def active_keys(self, seq: int) -> list[VerifierKey]:
        return [r.key for r in self.ring.ranges() if r.covers(seq)]

    def check(self, seq: int, payload: bytes) -> Problem | None:
        """Check the record at ``seq``; return its problem, if any. Always advances."""
        problem = None
        try:
            fields = _unpackb(payload, raw=False, strict_map_key=False)
        except Exception:  # msgpack raises several unrelated types; _check names it
            fields = None
        # The common record (a transaction, unsigned, in order) is checked inline; any
        # other goes through ``_check``, which gives each failure its code.
        if (
            type(fields) is list
            and len(fields) == FIELD_COUNT
            and fields[VERSION] == FORMAT_VERSION
            and fields[SEQ] == seq
            and fields[PREV_HASH] == self.prev_hash
            and fields[ORIGIN] == self.origin
            and fields[HASH_ALG] == HASH_ALGORITHM
            and fields[KEY_FP] is None
            and fields[SIGNATURE] is None
            and fields[KIND] in _PLAIN_KINDS
            and type(fields[TIME_US]) is int
            and fields[TIME_US] >= self.last_time_us
            and type(fields[KIND]) is int
        ):
            self.last_time_us = fields[TIME_US]
            self.seen_v2 = True
        else:
            try:
                self._check(seq, payload)
            except VerifyProblem as exc:
                problem = Problem(exc.code, seq, exc.detail)
        self.prev_hash = _sha256(payload).digest()
        leaf = _leaf_context.copy()
        leaf.update(payload)
        self.tree_append(leaf.digest())
        self.next_seq = seq + 1
        return problem

    def _check(self, seq: int, payload: bytes) -> None:
        try:
            fields = unpack_fields(payload)
        except ValueError as exc:
            raise VerifyProblem("record_malformed", str(exc)) from None
        version = fields[VERSION]
        if len(fields) == LEGACY_FIELD_COUNT and version == LEGACY_FORMAT_VERSION:
            if self.seen_v2:
                raise VerifyProblem(
                    "legacy_record", "a 0.8 (version 1) record after the log was migrated"
                )
            self._check_position(seq, fields)
            self.legacy_through = seq
            return
        if len(fields) != FIELD_COUNT or version != FORMAT_VERSION:
            raise VerifyProblem("record_malformed", f"unknown record format version {version!r}")
        kind = fields[KIND]
        if type(kind) is not int or kind not in KNOWN_KINDS:
            raise VerifyProblem("record_malformed", f"unknown record kind {kind!r}")
        try:
            check_algorithm("hash", fields[HASH_ALG])
        except AlgorithmRefused as exc:
            raise VerifyProblem("algorithm_refused", str(exc)) from None
        origin = fields[ORIGIN]
        if self.origin is None:
            self.origin = origin
        if origin != self.origin:
            raise VerifyProblem(
                "wrong_origin", f"record of log {origin!r}, this log is {self.origin!r}"
            )
        if self.legacy_through and not self.seen_v2 and kind != MIGRATED_KIND:
            raise VerifyProblem("legacy_record", "0.8 records end without a migration marker")
        self.seen_v2 = True
        self._check_position(seq, fields)
        time_us = fields[TIME_US]
        if type(time_us) is not int or time_us < self.last_time_us:
            raise VerifyProblem(
                "time_backwards", f"commit time {time_us} is before {self.last_time_us}"
            )
        self.last_time_us = time_us
        self._check_signature(seq, kind, fields)
        if kind == CHECKPOINT_KIND:
            self._check_checkpoint(seq, fields[BODY])
        elif kind == ANCHOR_KIND and self.anchors is not None:
            self.anchors.check_record(seq, fields[BODY])

    def _check_position(self, seq: int, fields: list[Any]) -> None:
        if fields[SEQ] != seq:
            raise VerifyProblem(
                "seq_mismatch", f"record says seq {fields[SEQ]!r} at position {seq}"
            )
        if fields[PREV_HASH] != self.prev_hash:
            raise VerifyProblem(
                "chain_broken",
                "prev_hash is not the previous record's hash (a record before it was "
                "changed, removed or added)",
            )

    def _check_signature(self, seq: int, kind: int, fields: list[Any]) -> None:
        key_fp, signature = fields[KEY_FP], fields[SIGNATURE]
        body = fields[BODY]
        if kind == KEY_ADDED_KIND:
            key = self._key_from(body, 1)
            if self.trusted is not None and key.fingerprint not in self.trusted:
                raise VerifyProblem(
                    "untrusted_key", f"the log adds key {key.to_text()}, not a trusted key"
                )
            if key_fp != key.fingerprint or type(signature) is not bytes:
                raise VerifyProblem("key_event_invalid", "a key is added signed by itself")
            self._verify(key, fields, signature)
            try:
                self.ring.add(key, seq)
            except ValueError as exc:
                raise VerifyProblem("key_event_invalid", str(exc)) from None
            self.keys.append(key)
            return
        if kind == KEY_ROTATED_KIND:
            new = self._key_from(body, 2)
            old_fp = body[1] if type(body) is list and len(body) > 2 else None
            if (
                type(signature) is not list
                or len(signature) != 2
                or not all(type(s) is bytes for s in signature)
            ):
                raise VerifyProblem(
                    "rotation_unsigned", "a rotation must be signed by the old and the new key"
                )
            if key_fp != old_fp or type(old_fp) is not bytes:
                raise VerifyProblem("key_event_invalid", "a rotation is signed by its old key")
            self._verify_ring(old_fp, seq, fields, signature[0])
            self._verify(new, fields, signature[1])
            try:
                self.ring.rotate(old_fp, new, seq)
            except ValueError as exc:
                raise VerifyProblem("key_event_invalid", str(exc)) from None
            self.keys.append(new)
            return
        if key_fp is None:
            if signature is not None:
                raise VerifyProblem("signature_invalid", "a signature without a key")
            if kind == KEY_REVOKED_KIND:
                raise VerifyProblem("key_event_invalid", "a revocation must be signed")
            return
        if type(key_fp) is not bytes or type(signature) is not bytes:
            raise VerifyProblem("signature_invalid", "the signature field is not one signature")
        self._verify_ring(key_fp, seq, fields, signature)
        if kind == KEY_REVOKED_KIND:
            revoked = body[1] if type(body) is list and len(body) > 1 else None
            try:
                self.ring.revoke(revoked, seq + 1 if revoked == key_fp else seq)  # type: ignore[arg-type]
            except (ValueError, TypeError) as exc:
                raise VerifyProblem("key_event_invalid", str(exc)) from None

    def _key_from(self, body: Any, index: int) -> VerifierKey:
        try:
            key = VerifierKey.from_text(body[index])
        except Exception as exc:
            raise VerifyProblem("key_event_invalid", f"not a verifier key: {exc}") from None
        if key.name != self.origin:
            raise VerifyProblem("key_event_invalid", f"key {key.name!r} is not this log's")
        return key

    def _verify(self, key: VerifierKey, fields: list[Any], signature: bytes) -> None:
        try:
            key.verify(signing_message(fields), signature)
        except SignatureInvalid as exc:
            raise VerifyProblem("signature_invalid", str(exc)) from None

    def _verify_ring(self, key_fp: bytes, seq: int, fields: list[Any], signature: bytes) -> None:
        try:
            self.ring.verify(key_fp, seq, signing_message(fields), signature)
        except SignatureInvalid as exc:
            code = exc.reason if exc.reason in ("key_out_of_range", "unknown_key") else None
            raise VerifyProblem(code or "signature_invalid", str(exc)) from None

    def _check_checkpoint(self, seq: int, body: Any) -> None:
        note = body[1] if type(body) is list and len(body) > 1 else None
        if type(note) is not str:
            raise VerifyProblem("checkpoint_invalid", "a checkpoint record holds no note")
        keys = self.active_keys(seq)
        if not keys:
            raise VerifyProblem("checkpoint_invalid", "no key is valid at this checkpoint")
        try:
            checkpoint = open_checkpoint(note, keys, origin=self.origin)
        except (NoteMalformed, SignatureInvalid) as exc:
            raise VerifyProblem("checkpoint_invalid", str(exc)) from None
        size, root = self.tree_root()
        if checkpoint.size != size or checkpoint.root_hash != root:
            raise VerifyProblem(
                "checkpoint_mismatch",
                f"checkpoint says {checkpoint.size} records with root "
                f"{checkpoint.root_hash.hex()[:16]}, the log's tree has {size} with "
                f"{root.hex()[:16]}",
            )
        self.checkpoints.append(CheckpointSeen(seq, size, root))
        if self.anchors is not None:
            self.anchors.add_checkpoint(seq, note)


class AnchorChecks:
    """Checks every anchor record's token against the checkpoint record it names.

    ``roots`` None checks each token but not its chain to a TSA root (``verify`` says so:
    ``anchors_rooted`` is False). Memory stays small on a long log: ``notes`` holds the
    digest of each checkpoint not yet passed by an anchor (anchors name checkpoints in
    order, so older ones are dropped), and ``tokens`` the digest of the tokens the side
    file names (``side_seqs``).
    """

    def __init__(
        self,
        roots: Sequence[x509.Certificate] | None,
        policy: str | None,
        side_seqs: Iterable[int] = (),
    ) -> None:
        self.roots = roots
        self.policy = policy
        self.notes: dict[int, bytes] = {}
        self.count = 0
        self.seen = 0
        self.side_seqs = set(side_seqs)
        self.tokens: dict[int, bytes] = {}
        """SHA-256 of the token of each anchor record the side file names, by seq."""

    def add_checkpoint(self, seq: int, note: str) -> None:
        self.notes[seq] = checkpoint_digest(note)

    def check_record(self, seq: int, body: Any) -> None:
        self.seen += 1
        try:
            anchor = parse_anchor_body(body)
        except ValueError as exc:
            raise VerifyProblem("anchor_invalid", str(exc)) from None
        if seq in self.side_seqs:
            self.tokens[seq] = _sha256(anchor.token).digest()
        note = self.notes.get(anchor.checkpoint_seq)
        if note is None or anchor.checkpoint_seq >= seq:
            raise VerifyProblem(
                "anchor_mismatch",
                f"the anchor names record {anchor.checkpoint_seq}, which is not a checkpoint "
                "before it",
            )
        found = check_token(anchor.token, note, self.roots, policy=self.policy)
        notes = self.notes
        while notes and (oldest := next(iter(notes))) < anchor.checkpoint_seq:
            del notes[oldest]
        if found is not None:
            code, detail = found
            raise VerifyProblem(
                code,
                f"the token from {anchor.tsa} for checkpoint {anchor.checkpoint_seq}: {detail}",
            )
        self.count += 1


def read_side_checkpoints(data_dir: str) -> list[dict[str, Any]]:
    """The side file's entries, oldest first; a torn last line is ignored."""
    path = os.path.join(data_dir, CHECKPOINTS_FILE)
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
        if isinstance(entry, dict) and isinstance(entry.get("note"), str):
            entries.append(entry)
    return entries


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.dropped = 0

    def add(self, problem: Problem | None) -> None:
        if problem is None:
            return
        if len(self.problems) < PROBLEMS_MAX:
            self.problems.append(problem)
        else:
            self.dropped += 1


def verify(
    path: str | os.PathLike[str],
    *,
    keys: Iterable[VerifierKey] | None = None,
    checkpoints: Iterable[str] = (),
    tsa_roots: Sequence[x509.Certificate] | None = None,
    tsa_policy: str | None = None,
) -> VerifyResult:
    """Verify the whole history of the data directory at ``path``.

    Args:
        path: a database's data directory (``log/``, ``ledger/``).
        keys: public keys to trust; the log's first key (and any added without a
            rotation) must be one of them. ``None`` trusts the keys the log names
            (enough to detect changes after the fact, not a forger with disk access).
        checkpoints: signed checkpoint notes kept elsewhere (by an auditor, a witness):
            the log must contain them (``rollback``, ``checkpoint_fork`` otherwise).
        tsa_roots: the CA certificates RFC 3161 anchors must chain to; ``None`` checks
            every token but not its chain (the result's ``anchors_rooted`` says so).
        tsa_policy: the TSA policy OID every anchor token must carry, if any.

    Returns:
        A :class:`VerifyResult`; ``ok`` is True only if nothing is wrong.
    """
    data_dir = os.fspath(path)
    collector = _Collector()
    roots: dict[int, bytes] = {}
    frontier = Frontier()
    side = read_side_checkpoints(data_dir)
    wanted = {int(e.get("size", -1)) for e in side}
    external: list[tuple[str, Checkpoint]] = []
    for note in checkpoints:
        try:
            external.append((note, Checkpoint.from_text(note.split("\n\n", 1)[0] + "\n")))
        except NoteMalformed as exc:
            collector.add(Problem("checkpoint_invalid", 0, f"a trusted checkpoint: {exc}"))
    wanted |= {c.size for _, c in external}

    def append(leaf: bytes) -> None:
        frontier.append(leaf)
        if frontier.size in wanted:
            roots[frontier.size] = frontier.root()

    side_anchors = read_side_anchors(data_dir)
    anchors = AnchorChecks(tsa_roots, tsa_policy, (int(e["seq"]) for e in side_anchors))
    checker = RecordChecker(
        tree_append=append,
        tree_root=lambda: (frontier.size, frontier.root()),
        trusted_keys=keys,
        anchors=anchors,
    )
    if 0 in wanted:
        roots[0] = frontier.root()
    resumed = _resume_after_archive(data_dir, checker, collector)
    archived_through = joined_at = 0
    if resumed is not None:
        archived_through, frontier, joined_at = resumed
        # An anchor record still in log/ may stamp a checkpoint record that was
        # archived: its note comes from the side file (checked there by signature).
        for entry in side:
            if int(entry.get("seq", 0)) <= archived_through and isinstance(entry["note"], str):
                anchors.add_checkpoint(int(entry["seq"]), entry["note"])
    reader = LogReader(data_dir, archived_through + 1)
    last_seq = 0
    try:
        for record in reader:
            collector.add(checker.check(record.seq, record.payload))
            last_seq = record.seq
    except LogDamage as exc:
        collector.add(Problem("log_damaged", exc.seq, str(exc)))
        last_seq = exc.seq - 1
    _check_outside(checker, side, external, roots, last_seq, collector)
    _check_side_anchors(side_anchors, anchors, last_seq, collector, archived_through)
    if archived_through:
        _check_archived_anchors(checker, side, side_anchors, anchors, archived_through, collector)
    problems = sorted(collector.problems, key=lambda p: p.seq)
    first = problems[0] if problems else None
    return VerifyResult(
        ok=first is None,
        code=first.code if first else "ok",
        first_bad_seq=first.seq if first else None,
        detail=first.detail if first else f"{last_seq} records verified",
        problems=problems,
        records=last_seq,
        checkpoints=len(checker.checkpoints),
        legacy_through=checker.legacy_through,
        origin=checker.origin,
        keys=[k.to_text() for k in checker.keys],
        problems_dropped=collector.dropped,
        archived_through=archived_through,
        joined_at=joined_at,
        anchors=anchors.count,
        anchors_rooted=tsa_roots is not None or not anchors.seen,
    )


def _resume_after_archive(
    data_dir: str, checker: RecordChecker, collector: _Collector
) -> tuple[int, Frontier, int] | None:
    """Seed ``checker`` from ``ledger/archived.json`` when ``log/`` starts after it.

    Returns the last archived seq, the tree's frontier there and the snapshot offset the
    node joined from (0: none), or None to read from record 1. A manifest whose segments
    are all still in ``log/`` (a crash between writing it and moving them) is not used.
    """
    try:
        archived = read_archived(data_dir)
    except ValueError as exc:
        collector.add(Problem("archive_invalid", 1, str(exc)))
        return None
    if archived is None:
        return None
    segments = list_segments(os.path.join(data_dir, "log"))
    if not segments or segments[0][0] != archived.through + 1:
        return None
    try:
        seeded = Frontier.from_nodes(archived.through, archived.frontier)
    except ValueError as exc:
        collector.add(Problem("archive_invalid", archived.through + 1, str(exc)))
        return None
    checker.resume(archived)
    return archived.through, seeded, archived.joined_at


def _check_side_anchors(
    side: list[dict[str, Any]],
    anchors: AnchorChecks,
    last_seq: int,
    collector: _Collector,
    archived_through: int = 0,
) -> None:
    """Anchors the side file kept must be in the log: not beyond its end, same token.

    Those whose record was archived are checked by :func:`_check_archived_anchors`.
    """
    for entry in side:
        seq = int(entry["seq"])
        if seq <= archived_through:
            continue
        if seq > last_seq:
            collector.add(
                Problem(
                    "truncated",
                    last_seq + 1,
                    f"the log ends at seq {last_seq}, but the side file's anchor record {seq} "
                    f"(stamping checkpoint {entry.get('checkpoint_seq')}) was written",
                )
            )
            continue
        token = anchors.tokens.get(seq)
        try:
            kept = _sha256(base64.b64decode(entry["token"], validate=True)).digest()
        except ValueError:
            kept = None
        if token is None or token != kept:
            collector.add(
                Problem(
                    "anchor_mismatch",
                    seq,
                    f"the side file's anchor record {seq} is not the log's record {seq}",
                )
            )


def _check_archived_anchors(
    checker: RecordChecker,
    side: list[dict[str, Any]],
    side_anchors: list[dict[str, Any]],
    anchors: AnchorChecks,
    archived_through: int,
    collector: _Collector,
) -> None:
    """Anchors whose record was archived (``ledger/archived.py``): the record is gone
    from ``log/``, so what the side file kept is checked the way an archived side-file
    checkpoint is. Its note must be a checkpoint of this log signed by a key valid at
    its size (and the side file's checkpoint at that seq, when it has one), and the
    token must stamp that note and pass every check of ``tsa.verify_token``.
    """
    side_notes = {int(e.get("seq", 0)): e.get("note") for e in side}
    for entry in side_anchors:
        seq = int(entry["seq"])
        if seq > archived_through:
            continue
        anchors.seen += 1
        checkpoint_seq = int(entry.get("checkpoint_seq", 0))
        note = entry["note"]
        try:
            token = base64.b64decode(entry["token"], validate=True)
            checkpoint = open_checkpoint(
                note, checker.active_keys(checkpoint_seq), origin=checker.origin
            )
        except (NoteMalformed, SignatureInvalid, ValueError) as exc:
            collector.add(Problem("anchor_invalid", seq, f"archived anchor record {seq}: {exc}"))
            continue
        kept = side_notes.get(checkpoint_seq)
        if (
            checkpoint.size != checkpoint_seq - 1
            or int(entry.get("size", -1)) != checkpoint.size
            or (kept is not None and kept != note)
        ):
            collector.add(
                Problem(
                    "anchor_mismatch",
                    seq,
                    f"archived anchor record {seq} names checkpoint {checkpoint_seq}, but its "
                    f"note covers {checkpoint.size} records or is not the side file's",
                )
            )
            continue
        found = check_token(token, note, anchors.roots, policy=anchors.policy)
        if found is not None:
            code, detail = found
            collector.add(Problem(code, seq, f"archived anchor record {seq}: {detail}"))
            continue
        anchors.count += 1


def _check_outside(
    checker: RecordChecker,
    side: list[dict[str, Any]],
    external: list[tuple[str, Checkpoint]],
    roots: dict[int, bytes],
    last_seq: int,
    collector: _Collector,
) -> None:
    """Checkpoints kept outside the log must be in it: not beyond its end, same roots."""

    def keys_at(size: int) -> list[VerifierKey]:
        # A checkpoint of ``size`` records is written as record size + 1: only a key
        # valid there may have signed it.
        return checker.active_keys(size + 1)

    for entry in side:
        note = entry["note"]
        try:
            checkpoint = open_checkpoint(
                note, keys_at(int(entry.get("size", -1))), origin=checker.origin
            )
        except (NoteMalformed, SignatureInvalid) as exc:
            collector.add(
                Problem("checkpoint_invalid", int(entry.get("seq", 0)), f"side file: {exc}")
            )
            continue
        _compare(checkpoint, roots, last_seq, "truncated", "the side file's", collector)
    for note, claimed in external:
        if claimed.size > last_seq:  # the log may lack the key that signed it
            _compare(claimed, roots, last_seq, "rollback", "a trusted", collector)
            continue
        try:
            checkpoint = open_checkpoint(note, keys_at(claimed.size), origin=checker.origin)
        except (NoteMalformed, SignatureInvalid) as exc:
            collector.add(Problem("checkpoint_invalid", claimed.size, f"a trusted one: {exc}"))
            continue
        _compare(checkpoint, roots, last_seq, "rollback", "a trusted", collector)


def _compare(
    checkpoint: Checkpoint,
    roots: dict[int, bytes],
    last_seq: int,
    short_code: str,
    whose: str,
    collector: _Collector,
) -> None:
    if checkpoint.size > last_seq:
        collector.add(
            Problem(
                short_code,
                last_seq + 1,
                f"the log ends at seq {last_seq}, but {whose} checkpoint covers "
                f"{checkpoint.size} records",
            )
        )
        return
    root = roots.get(checkpoint.size)
    if root is not None and root != checkpoint.root_hash:
        collector.add(
            Problem(
                "checkpoint_fork",
                checkpoint.size,
                f"{whose} checkpoint of {checkpoint.size} records has root "
                f"{checkpoint.root_hash.hex()[:16]}, the log's tree {root.hex()[:16]}",
            )
        )
