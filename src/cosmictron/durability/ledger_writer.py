"""The ledger on the write side: the tree, the signing key, checkpoints, the open check.

``CommitLog.append`` writes every record in the ledger's format (origin, commit time,
algorithm, key and signature: ``cosmictron.ledger.record_format``) and, when the ledger
is on (``DurabilityConfig.signing`` is ``checkpoint`` or ``event``), adds each
payload to the writer's ``pending`` list. Every ``checkpoint_interval_records`` records,
or ``checkpoint_interval_ms`` after the last checkpoint (on the next record, or by the
ledger thread when the log is idle: ``ledger_thread.py``), and at a clean close, the
log appends a checkpoint record: the pending payloads' leaves are hashed in one batch
and go into the Merkle tree (``<data_dir>/ledger/tree.hashes``, derived data: synced
only before segments are archived, ``log_archive.py``), and the tree's size and root
are signed as a C2SP checkpoint note. Once the log is synced past a checkpoint record,
the note is also appended to ``<data_dir>/ledger/checkpoints`` (synced, by the ledger
thread, or at close), a side file that outlives a truncated or rolled-back log.

Everything per record on the commit thread is one list append; per checkpoint, the
batch of leaf and node hashes, one signature and the checkpoint record. The side file's
fsync (about 3 ms) is off the commit thread (docs/design/ledger.md, "Checkpoint cost").
Key events: added (on open, for a configured key the log does not count yet), rotated
(``rotation``/``rotate``/``rotated``), revoked (``revocation``).

On open (:meth:`LedgerWriter.open`, after recovery cut any torn tail) the writer refuses
to start when the log ends before the side files' last checkpoint or any anchor (rollback), when the
tree over the log does not have that checkpoint's root (a record it covers was changed),
or when a record after it fails the checks of ``cosmictron.ledger.verify``, naming the
first bad record. A 0.8 log (version-1 records only) is migrated: a marker record is
written and the old records stay verifiable as a hash chain.

The ledger needs the real file system (``FileStorage``); with a simulated storage the
records still carry origin and time, but nothing is signed and no tree is kept.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from cosmictron.durability.config import DurabilityConfig
from cosmictron.errors import CorruptLog, DurabilityError, InvalidRequest
from cosmictron.ledger import merkle
from cosmictron.ledger.anchor import ANCHORS_FILE, read_side_anchors
from cosmictron.ledger.archived import ARCHIVED_FILE, ArchivedRange, read_archived
from cosmictron.ledger.checkpoint import Checkpoint, sign_checkpoint
from cosmictron.ledger.errors import KeyUnavailable
from cosmictron.ledger.logread import (
    FRAME_HEADER,
    SEGMENT_HEADER,
    LogDamage,
    LogReader,
    list_segments,
)
from cosmictron.ledger.merkle import (
    LEAF_PREFIX,
    BasedHashStore,
    FileHashStore,
    HashStore,
    MerkleTree,
    append_payloads,
)
from cosmictron.ledger.record_format import (
    BODY,
    CHECKPOINT_KIND,
    FIELD_COUNT,
    FORMAT_VERSION,
    KEY_ADDED_KIND,
    KIND,
    MIGRATED_KIND,
    ORIGIN,
    ORIGIN_PREFIX,
    PREV_HASH,
    TIME_US,
    VERSION,
    unpack_fields,
)
from cosmictron.ledger.signing import (
    KeyRing,
    SigningKey,
    VerifierKey,
    load_key,
    load_key_from_env,
    load_or_create_key,
    save_key,
)
from cosmictron.ledger.verifier import CHECKPOINTS_FILE, RecordChecker, read_side_checkpoints

PREHASH_RECORDS = 256
"""The commit log wakes the ledger thread every this many pending records, to hash them
into the staged tree ahead of the next checkpoint (:meth:`LedgerWriter.prehash`)."""

UNANCHORED_MAX = 10_000
"""Unanchored checkpoints remembered during a TSA outage; past it, the second oldest is
forgotten (the oldest keeps the lag exact; anchoring the latest covers them all)."""


class _Stage:
    """The pending records' hashes, computed ahead by the ledger thread (``prehash``):
    the tree of ``size`` leaves that the first ``done`` pending records make when
    appended to the tree of ``base`` leaves, and the hashes its store appends."""

    __slots__ = ("base", "done", "frontier", "parts", "size")

    def __init__(self, size: int, frontier: list[bytes]) -> None:
        self.base = self.size = size
        self.frontier = frontier
        self.parts: list[bytes] = []
        self.done = 0


class Unanchored(NamedTuple):
    """A checkpoint that covers records no anchor covers yet."""

    checkpoint_seq: int
    note: str
    first_seq: int
    """The oldest record it covers that no anchor covers, and that record's time."""
    first_us: int


def _append_lines(path: str, entries: list[dict[str, Any]]) -> None:
    """Append one JSON line per entry to ``path`` and fsync it."""
    if not entries:
        return
    text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class CommitLog(Protocol):
    """What the writer uses of ``commitlog.CommitLog`` (which imports this module)."""

    next_offset: int
    origin: str
    last_time_us: int
    ledger: LedgerWriter | None
    event_key: SigningKey | None
    key_fp: bytes | None

    def append(self, kind: int, body: Any, signers: Sequence[SigningKey] | None = None) -> int: ...


logger = logging.getLogger(__name__)

LEDGER_DIR = "ledger"
TREE_FILE = "tree.hashes"
KEY_FILE = "signing.key"
TREE_FLUSH_LEAVES = 4096

_leaf_context = hashlib.sha256(LEAF_PREFIX)


class LedgerWriter:
    """The write side of the ledger for one data directory (see the module docstring).

    Args:
        data_dir: the database's data directory.
        config: its durability settings (``signing``, the checkpoint intervals, the key).
    """

    def __init__(self, data_dir: str, config: DurabilityConfig, *, replica: bool = False) -> None:
        self.replica = replica
        """Cluster mode: this log only copies another node's records
        (``CommitLog.append_payload``): the writer checks each one as ``verify`` would and
        keeps the tree and side file, but never writes a record of its own (no key event,
        no checkpoint, no anchor), so the copy stays byte for byte the leader's log."""
        self._copier: RecordChecker | None = None
        self.data_dir = data_dir
        self.directory = os.path.join(data_dir, LEDGER_DIR)
        self.mode = config.signing
        self.interval_records = config.checkpoint_interval_records
        self.interval_us = config.checkpoint_interval_ms * 1000
        self.key_path = config.signing_key_path
        self.origin = ""
        self.key: SigningKey | None = None
        self.ring = KeyRing()
        self.tree: MerkleTree | None = None
        self.pending: list[bytes] = []
        """Payloads of the records since the last checkpoint: their leaves are hashed in
        one batch when the next checkpoint puts them in the tree (``checkpoint_body``)."""
        self.last_checkpoint_seq = 0
        self.last_checkpoint_us = 0
        self.last_time_us = 0
        self.side_pending: list[dict[str, Any]] = []
        """Side-file entries of checkpoint records the log has not synced yet."""
        self.side_anchors_pending: list[dict[str, Any]] = []
        """The same for anchor records (``ledger/anchors``, ``anchorer.py``)."""
        self._side_queue: list[dict[str, Any]] = []
        """Entries whose records are synced, for ``ledger/checkpoints`` ..."""
        self._anchor_queue: list[dict[str, Any]] = []
        """... and for ``ledger/anchors``: both written by :meth:`flush_side`."""
        self._side_lock = threading.Lock()
        self._side_write_lock = threading.Lock()
        self._stage: _Stage | None = None
        self._stage_lock = threading.Lock()
        """Held while the ledger thread hashes a batch ahead and while a checkpoint takes
        the batch (or the tree changes): the tree never moves under a staged batch."""
        self.checkpoint_listeners: list[Callable[[int, str, MerkleTree], None]] = []
        """Called with (seq, note, tree) after each checkpoint record, under the writer
        lock (the WebSocket feed's ledger opt-in); the tree has exactly ``seq - 1``
        leaves then, so proofs against the checkpoint's size are cheap."""
        self.wake: Callable[[], None] | None = None
        """Set by the ledger thread while it runs: queued side-file entries are its job."""
        self.retired: dict[str, int | None] = {}
        """Fingerprints (hex) of keys whose range ended before the last checkpoint the
        side file vouches for, and the last seq of each (from its ``retired`` entry)."""
        self.checkpointing = False
        self.checkpoint_count = 0
        self.due_seq = 0
        """The commit log appends a checkpoint after the record at this seq, or after the
        first record at or past ``due_us``; ``checkpoint_written`` moves both on."""
        self.due_us = 0
        self.since_seq = 0
        """The first record after the last checkpoint record, and its time (0: none yet).
        ``CommitLog.append`` sets them; anchoring (``anchorer.py``) reads them to know
        how old the oldest record no anchor covers is."""
        self.since_us = 0
        self.unanchored: collections.deque[Unanchored] = collections.deque()
        """Checkpoints with records after the last anchor's checkpoint, oldest first
        (``anchorer.py``)."""

    # -- open --------------------------------------------------------------------------

    def open(self, log: CommitLog) -> None:
        """Check the log against the ledger's files, then attach to ``log`` (see above).

        The log must reach every checkpoint and every anchor the side files hold: a log
        that ends before one is a rollback, refused naming the first missing seq.

        Raises:
            CorruptLog: rollback or tampering, naming the first bad record.
            KeyUnavailable: the configured signing key cannot be used.
        """
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        last_seq = log.next_offset - 1
        side = read_side_checkpoints(self.data_dir)
        last = side[-1] if side else None
        if last is not None and int(last["seq"]) > last_seq:
            raise CorruptLog(
                os.path.join(self.data_dir, CHECKPOINTS_FILE),
                0,
                f"rollback: the log ends at seq {last_seq}, but checkpoint record "
                f"{last['seq']} (covering {last['size']} records) was written; the data "
                "directory is older than its ledger. Restore the newest backup",
                last_seq + 1,
            )
        anchors = read_side_anchors(self.data_dir)
        late = next((a for a in anchors if int(a["seq"]) > last_seq), None)
        if late is not None:
            raise CorruptLog(
                os.path.join(self.data_dir, ANCHORS_FILE),
                0,
                f"rollback: the log ends at seq {last_seq}, but anchor record {late['seq']} "
                f"(an RFC 3161 token over checkpoint record {late.get('checkpoint_seq')}) was "
                "written; the data directory is older than its ledger. Restore the newest "
                "backup",
                last_seq + 1,
            )
        try:
            archived = read_archived(self.data_dir)
            self.tree = open_tree(self.directory, archived)
        except ValueError as exc:  # includes a joined_frontier that does not fit joined_at
            raise CorruptLog(os.path.join(self.data_dir, ARCHIVED_FILE), 0, str(exc), 1) from None
        floor, resume = self._archived_floor(last, archived)
        checker = self._check_log(last, last_seq, resume)
        if checker is None:  # the tree file disagreed with the checkpoint: rebuild it
            self.tree.truncate(floor)
            checker = self._check_log(last, last_seq, resume)
            if checker is None:
                assert last is not None
                raise CorruptLog(
                    os.path.join(self.data_dir, "log"),
                    0,
                    f"ledger: checkpoint_mismatch: records 1..{last['size']} do not have "
                    "the root of the checkpoint signed over them; run cosmictron-cli verify "
                    "to find the changed record",
                    int(last["size"]),
                )
        self.origin = checker.origin or f"{ORIGIN_PREFIX}{secrets.token_hex(16)}"
        self.ring = checker.ring
        self.last_time_us = checker.last_time_us
        if checker.checkpoints:
            self.last_checkpoint_seq = checker.checkpoints[-1].seq
        elif last is not None:
            self.last_checkpoint_seq = int(last["seq"])
        if self.replica:
            self._open_replica(log, checker)
            return
        # A checkpoint is due N records or T after this open, not at once.
        self.last_checkpoint_us = max(self.last_time_us, time.time_ns() // 1000)
        self._set_due()
        self.key = self._load_key()
        self._seed_unanchored(last, last_seq, anchors, archived.joined_at if archived else 0)
        log.origin = self.origin
        log.last_time_us = max(log.last_time_us, self.last_time_us)
        log.ledger = self
        if checker.legacy_through and not checker.seen_v2:
            log.append(MIGRATED_KIND, [log.last_time_us, checker.legacy_through])
            logger.warning(
                "migrated a 0.8 commit log: records 1..%d verify as a hash chain only",
                checker.legacy_through,
            )
        active = {r.key.fingerprint for r in self.ring.ranges() if r.covers(log.next_offset)}
        retired = dict(self.retired)
        retired.update({r.key.fingerprint.hex(): r.last for r in self.ring.ranges()})
        if self.key.fingerprint not in active and self.key.fingerprint.hex() in retired:
            raise KeyUnavailable(
                "retired",
                f"the configured signing key {self.key.verifier.to_text()} was revoked or "
                f"rotated out (its range ended at seq {retired[self.key.fingerprint.hex()]}); "
                "configure the current key or a new one",
            )
        if self.key.fingerprint not in active:
            # In the ring before the record, so a checkpoint right after it names the key.
            self.ring.add(self.key.verifier, log.next_offset)
            log.append(KEY_ADDED_KIND, [log.last_time_us, self.key.verifier.to_text()], [self.key])
        if self.mode == "event":
            log.event_key = self.key
            log.key_fp = self.key.fingerprint

    def _open_replica(self, log: CommitLog, checker: RecordChecker) -> None:
        """Attach to ``log`` as a copy's ledger: no key, nothing appended (``replica``).

        The checker that checked the log on open goes on checking each copied record,
        now against the tree itself (one leaf at a time: a copy's records arrive one
        at a time too).
        """
        tree = self.tree
        assert tree is not None
        checker.tree_append = lambda leaf: tree.extend_hashes([leaf])
        checker.tree_root = lambda: (tree.size, tree.root())
        self._copier = checker
        if checker.origin is None:
            self.origin = ""  # an empty log: the first copied record names the origin
        log.origin = self.origin
        log.last_time_us = max(log.last_time_us, self.last_time_us)
        log.ledger = self

    def copied(self, seq: int, payload: bytes) -> None:
        """Check a record copied from the leader's log before it is written (``replica``).

        The record is checked as ``verify`` checks it (chain, origin, time, signature
        against the keys the log has counted, a checkpoint's root against the tree), so a
        replica never stores a record its own ``verify`` would refuse. A checkpoint's
        side-file entry is queued as the leader's was.

        Raises:
            DurabilityError: the record fails a check (naming it), or this ledger is not
                a replica's (a leader's ledger writes its own records).
        """
        checker = self._copier
        if checker is None:
            raise DurabilityError(
                "a log with the ledger on copies replicated records only when opened as a "
                "replica (PersistenceLayer(..., replica=True))"
            )
        problem = checker.check(seq, payload)
        if problem is not None:
            raise DurabilityError(
                f"the replicated record at offset {seq} fails the ledger's check: {problem.line()}"
            )
        fields = unpack_fields(payload)
        if not self.origin:
            self.origin = str(fields[ORIGIN])
        self.last_time_us = max(self.last_time_us, int(fields[TIME_US]))
        if fields[KIND] == CHECKPOINT_KIND:
            self.checkpoint_written(seq, list(fields[BODY]))

    def _archived_floor(
        self, last: dict[str, Any] | None, archived: ArchivedRange | None
    ) -> tuple[int, ArchivedRange | None]:
        """The last archived record (0: none), below which the tree cannot be rebuilt,
        and the manifest to start the open check from when no side-file checkpoint
        follows it (a node that joined from a snapshot and has copied no checkpoint
        since: ``archived.joined_at``); None when the check starts at a checkpoint.

        Raises:
            CorruptLog: the tree lost hashes of the archived records, or the side file
                does not reach past them.
        """
        segments = list_segments(os.path.join(self.data_dir, "log"))
        if archived is None or not segments or segments[0][0] != archived.through + 1:
            return 0, None
        assert self.tree is not None
        floor = archived.through
        if self.tree.size < floor:
            raise CorruptLog(
                os.path.join(self.directory, TREE_FILE),
                0,
                f"records 1..{floor} are archived, but the tree holds only {self.tree.size} "
                "leaves: restore ledger/tree.hashes, or put the archived segments back in log/",
                self.tree.size + 1,
            )
        if last is None or int(last["seq"]) <= floor:
            if archived.joined_at == floor:
                return floor, archived  # the snapshot's ledger state is the start
            raise CorruptLog(
                os.path.join(self.data_dir, CHECKPOINTS_FILE),
                0,
                f"records 1..{floor} are archived, but the side file has no checkpoint after "
                "them to start the open check from: restore ledger/checkpoints",
                floor + 1,
            )
        return floor, None

    def _seed_unanchored(
        self,
        last: dict[str, Any] | None,
        last_seq: int,
        anchors: list[dict[str, Any]],
        joined_at: int = 0,
    ) -> None:
        """What no anchor covers yet, from the side files (anchoring's starting point).

        Records between the last anchored checkpoint and the last checkpoint that are not
        themselves anchors are unanchored; so are records after the last checkpoint. Their
        times are not read back from the log: the lag of records from before this open
        counts from the open. A node that joined from a snapshot at ``joined_at`` counts
        only the records after it (the ones below were anchored, or not, by the leader
        that wrote them; a later anchor covers them anyway).
        """
        anchored = max([joined_at, *(int(a.get("checkpoint_seq", 0)) for a in anchors)])
        now = max(self.last_time_us, time.time_ns() // 1000)
        after = anchored
        if last is not None and int(last["seq"]) > anchored:
            last_cp = int(last["seq"])
            between = sum(1 for a in anchors if anchored < a["seq"] < last_cp)
            if last_cp - anchored - 1 - between > 0:
                self.unanchored.append(Unanchored(last_cp, last["note"], anchored + 1, now))
            after = last_cp
        trailing = sum(1 for a in anchors if a["seq"] > after)
        if last_seq - after - trailing > 0:
            self.since_seq, self.since_us = after + 1, now

    def _check_log(
        self, last: dict[str, Any] | None, last_seq: int, resume: ArchivedRange | None
    ) -> RecordChecker | None:
        """Bring the tree up to the log and check what the side file does not vouch for
        (or, with ``resume``, everything after the manifest's last record).

        Returns None when the tree's root at the last checkpoint is not the checkpoint's
        (the caller rebuilds the tree from the log and tries once more).
        """
        tree = self.tree
        assert tree is not None
        if resume is not None:
            check_from = resume.through + 1
        else:
            check_from = int(last["seq"]) if last is not None else 1
        if tree.size > check_from - 1:
            tree.truncate(check_from - 1)
        buffer: list[bytes] = []

        def flush() -> None:
            tree.extend_hashes(buffer)
            buffer.clear()

        def append(leaf: bytes) -> None:
            buffer.append(leaf)
            if len(buffer) >= TREE_FLUSH_LEAVES:
                flush()

        def root() -> tuple[int, bytes]:
            flush()
            return tree.size, tree.root()

        checker = RecordChecker(tree_append=append, tree_root=root)
        if resume is not None:
            checker.resume(resume)
        reader = LogReader(self.data_dir, min(tree.size + 1, check_from))
        try:
            for record in reader:
                if record.seq < check_from:
                    append(_leaf(record.payload))
                    continue
                seeding = record.seq == check_from and last is not None and resume is None
                if seeding and not self._seed(checker, last, record.payload, root):  # type: ignore[arg-type]
                    return None
                problem = checker.check(record.seq, record.payload)
                if problem is not None:
                    raise CorruptLog(
                        record.path,
                        record.byte_offset,
                        f"ledger: {problem.code}: {problem.detail}; the database refuses to "
                        "start (run cosmictron-cli verify for the whole history)",
                        problem.seq,
                    )
        except LogDamage as exc:
            raise CorruptLog(exc.path, exc.byte_offset, exc.reason, exc.seq) from None
        flush()
        if tree.size != last_seq:
            raise DurabilityError(
                f"the ledger read {tree.size} records but the log has {last_seq}; "
                "the log changed while the database opened"
            )
        return checker

    def _seed(
        self, checker: RecordChecker, last: dict[str, Any], payload: bytes, root: Any
    ) -> bool:
        """Start checking at the side file's last checkpoint record, trusting it."""
        fields = unpack_fields(payload)
        size, tree_root = root()
        note = last["note"]
        claimed = Checkpoint.from_text(note.split("\n\n", 1)[0] + "\n")
        if len(fields) != FIELD_COUNT or fields[VERSION] != FORMAT_VERSION:
            return False
        if size != claimed.size or tree_root != claimed.root_hash:
            return False
        checker.origin = fields[ORIGIN]
        checker.prev_hash = fields[PREV_HASH]
        checker.next_seq = int(last["seq"])
        checker.last_time_us = fields[TIME_US]
        checker.seen_v2 = True
        for text in last.get("keys", []):
            checker.ring.add(VerifierKey.from_text(text), int(last["seq"]))
        retired = last.get("retired", {})
        if isinstance(retired, dict):
            self.retired = {str(k): v for k, v in retired.items()}
        return True

    def _load_key(self) -> SigningKey:
        if self.key_path is not None:
            key = load_key(self.key_path)
        else:
            key = load_key_from_env() or load_or_create_key(
                os.path.join(self.directory, KEY_FILE), self.origin
            )
        return SigningKey(self.origin, key.seed)

    # -- the append path ---------------------------------------------------------------

    def checkpoint_body(self, time_us: int) -> list[Any]:
        """Put the pending leaves in the tree and sign its head: the checkpoint's body."""
        tree = self.tree
        assert tree is not None and self.key is not None
        pending = self.pending
        with self._stage_lock:
            stage, self._stage = self._stage, None
            if stage is not None and stage.done and stage.base == tree.size:
                tree.adopt(stage.size, stage.frontier, b"".join(stage.parts))
                tree.extend_payloads(pending[stage.done :])
            else:
                tree.extend_payloads(pending)
            pending.clear()
        checkpoint = Checkpoint.with_time(self.origin, tree.size, tree.root(), time_us)
        return [time_us, sign_checkpoint(checkpoint, self.key)]

    def prehash(self) -> None:
        """Hash the pending records into a staged tree, ahead of the next checkpoint.

        Run by the ledger thread (``ledger_thread.py``), woken every
        ``PREHASH_RECORDS`` records: the leaf and node hashes of a checkpoint were most
        of the ledger's cost on the commit thread (docs/design/ledger.md, "Checkpoint
        cost"). Only with the compiled kernel, which hashes without the GIL, so the work
        really runs beside the commit thread; the pure-Python loop would only move it.
        The tree itself is not touched: :meth:`checkpoint_body` adopts the staged hashes
        if the tree is still the one they were staged on, and hashes the rest.
        """
        if not merkle.COMPILED:
            return
        with self._stage_lock:
            tree = self.tree
            if tree is None:
                return
            stage = self._stage
            if stage is None or stage.base != tree.size:
                stage = self._stage = _Stage(*tree.frontier_nodes())
            batch = self.pending[stage.done :]
            if not batch:
                return
            stage.parts.append(append_payloads(stage.frontier, stage.size, batch))
            stage.size += len(batch)
            stage.done += len(batch)

    def _set_due(self) -> None:
        self.due_seq = self.last_checkpoint_seq + self.interval_records
        self.due_us = self.last_checkpoint_us + self.interval_us

    def checkpoint_written(self, seq: int, body: list[Any]) -> None:
        """Remember a checkpoint record; its side-file entry waits until it is synced
        (written by a later checkpoint, or at close). Then tell the listeners."""
        self._remember_checkpoint(seq, body)
        tree = self.tree
        for listener in list(self.checkpoint_listeners):
            try:
                assert tree is not None
                listener(seq, body[1], tree)
            except Exception:
                logger.exception("a checkpoint listener failed at seq %d", seq)

    def leaf_hash(self, seq: int) -> bytes | None:
        """The leaf hash of record ``seq``, from the tree or the pending leaves; None if
        not (yet) known. Under the writer lock."""
        tree = self.tree
        if tree is None or seq < 1:
            return None
        if seq <= tree.size:
            return tree.leaf(seq - 1)
        index = seq - tree.size - 1
        return _leaf(self.pending[index]) if index < len(self.pending) else None

    def _remember_checkpoint(self, seq: int, body: list[Any]) -> None:
        self.last_checkpoint_seq = seq
        self.last_checkpoint_us = body[0]
        self._set_due()
        self.checkpoint_count += 1
        if self.since_seq and self.since_seq < seq:  # it covers records after the last one
            if len(self.unanchored) >= UNANCHORED_MAX:
                oldest = self.unanchored.popleft()
                self.unanchored.popleft()
                self.unanchored.appendleft(oldest)
            self.unanchored.append(Unanchored(seq, body[1], self.since_seq, self.since_us))
        self.since_seq = self.since_us = 0  # the checkpoint record itself set them
        ranges = self.ring.ranges()
        keys = [r.key.to_text() for r in ranges if r.covers(seq)]
        # Keys whose range ended (rotated out, revoked), so that an open that checks only
        # from this checkpoint on still refuses to sign with one of them again.
        retired = dict(self.retired)
        retired.update({r.key.fingerprint.hex(): r.last for r in ranges if r.last is not None})
        entry = {
            "seq": seq,
            "size": seq - 1,
            "note": body[1],
            "origin": self.origin,
            "keys": keys,
            "retired": retired,
        }
        with self._side_lock:  # queue_side (the ledger thread) replaces the list
            self.side_pending.append(entry)

    def anchor_written(self, entry: dict[str, Any]) -> None:
        """Remember an anchor record's side-file entry (``ledger.anchor.side_entry``);
        like a checkpoint's, it is written once the log is synced past its record."""
        with self._side_lock:
            self.side_anchors_pending.append(entry)

    def queue_side(self, synced: int) -> None:
        """Queue the side-file entries of checkpoints and anchors the log has synced (no
        I/O): an entry is never written before its record is durable.

        The commit thread calls this at each checkpoint, the anchorer after its anchor
        records; the ledger thread (``ledger_thread.py``) writes the queues, or
        :meth:`flush_side` does at close.
        """
        with self._side_lock:
            ready = [e for e in self.side_pending if e["seq"] <= synced]
            anchors = [e for e in self.side_anchors_pending if e["seq"] <= synced]
            if not ready and not anchors:
                return
            if ready:
                self.side_pending = [e for e in self.side_pending if e["seq"] > synced]
                self._side_queue.extend(ready)
            if anchors:
                self.side_anchors_pending = [
                    e for e in self.side_anchors_pending if e["seq"] > synced
                ]
                self._anchor_queue.extend(anchors)
        wake = self.wake
        if wake is not None:
            wake()

    def flush_side(self) -> None:
        """Append the queued entries to their side files and fsync (one writer at a time)."""
        with self._side_write_lock:
            with self._side_lock:
                checkpoints, self._side_queue = self._side_queue, []
                anchors, self._anchor_queue = self._anchor_queue, []
            try:
                _append_lines(os.path.join(self.data_dir, CHECKPOINTS_FILE), checkpoints)
            except BaseException:
                with self._side_lock:  # written again next time: never lost
                    self._side_queue[:0] = checkpoints
                    self._anchor_queue[:0] = anchors
                raise
            try:
                _append_lines(os.path.join(self.data_dir, ANCHORS_FILE), anchors)
            except BaseException:
                with self._side_lock:
                    self._anchor_queue[:0] = anchors
                raise

    def unwritten_side(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The checkpoint and anchor entries not in their side files yet (pending a sync
        or queued for the ledger thread), oldest first: what a reader of the files adds
        to see every checkpoint and anchor written so far.

        Read the side files while holding :meth:`side_files_steady`, else an entry may
        move from the queue to its file in between.
        """
        with self._side_lock:
            return (
                self._side_queue + self.side_pending,
                self._anchor_queue + self.side_anchors_pending,
            )

    def side_files_steady(self) -> threading.Lock:
        """A lock that keeps the side files and the queues as they are (no flush)."""
        return self._side_write_lock

    def write_side(self, synced: int) -> None:
        """Append the side-file entries of checkpoints (and anchors) the log has synced,
        and sync; or, with the ledger thread running, hand them to it."""
        self.queue_side(synced)
        if self.wake is None:
            self.flush_side()

    def needs_checkpoint(self, last_seq: int) -> bool:
        """Whether records were appended after the last checkpoint record (never on a
        replica: its checkpoints are the leader's, copied)."""
        return not self.replica and last_seq > self.last_checkpoint_seq

    def rotation(self, new_key: SigningKey | None) -> tuple[SigningKey, SigningKey]:
        """The old and new key of a rotation (a fresh key when ``new_key`` is None)."""
        assert self.key is not None
        new = SigningKey(self.origin, (new_key or SigningKey.generate(self.origin)).seed)
        return self.key, new

    def rotate(self, new: SigningKey, seq: int) -> None:
        """Before the rotation record at ``seq``: the ring hands over at ``seq``."""
        assert self.key is not None
        self.ring.rotate(self.key.fingerprint, new.verifier, seq)

    def rotated(self, new: SigningKey) -> None:
        """After the rotation record: sign with the new key, and keep it where the old was."""
        self.key = new
        if self.key_path is None and load_key_from_env() is None:
            save_key(new, os.path.join(self.directory, KEY_FILE))
        elif self.key_path is not None:
            save_key(new, self.key_path)

    def revocation(self, key_fingerprint: bytes, seq: int) -> VerifierKey:
        """Check that the key may be revoked at ``seq``, and end its range there.

        Only a key active at ``seq`` other than the one the writer signs with can be
        revoked: the revocation record is signed by the writer's key, and a writer with
        no key left could sign nothing after it. A compromised current key is retired by
        a rotation (whose record is its last), which needs no revocation.

        Raises:
            InvalidRequest: the key is the writer's own, unknown, or not active at ``seq``.
        """
        assert self.key is not None
        if key_fingerprint == self.key.fingerprint:
            raise InvalidRequest(
                "this is the key the database signs with now: rotate it out instead "
                "(Database.rotate_signing_key); the rotation record is its last"
            )
        for found in self.ring.ranges():
            if found.key.fingerprint == key_fingerprint:
                if not found.covers(seq):
                    ended = "never" if found.last is None else f"at seq {found.last}"
                    raise InvalidRequest(
                        f"key {found.key.to_text()} is not active (its range ended {ended}): "
                        "there is nothing to revoke"
                    )
                self.ring.revoke(key_fingerprint, seq)
                return found.key
        raise InvalidRequest(f"no key {key_fingerprint.hex()[:16]} in this log")

    def close(self) -> None:
        with self._stage_lock:
            self._stage = None
        if self.tree is not None:
            close = getattr(self.tree.store, "close", None)
            if close is not None:
                close()
            self.tree = None


def migrate_legacy_log(data_dir: str, log: CommitLog) -> bool:
    """Write the migration marker after a 0.8 log's last record (the ledger off).

    With the ledger on, :meth:`LedgerWriter.open` does this as part of its check.
    Returns whether the log was a 0.8 log.
    """
    last_seq = log.next_offset - 1
    if last_seq == 0:
        return False
    segments = list_segments(os.path.join(data_dir, "log"))
    if segments:
        # A version-2 record is never followed by a version-1 one: when the last
        # segment starts with one, the log is not a 0.8 log (and nothing more is read).
        with open(segments[-1][1], "rb") as segment:
            head = segment.read(SEGMENT_HEADER.size + FRAME_HEADER.size + 2)
        if head[-2:] != LEGACY_PAYLOAD_PREFIX:
            return False
    last = None
    for record in LogReader(data_dir, last_seq):
        last = record
    if last is None or last.payload[:2] != LEGACY_PAYLOAD_PREFIX:
        return False
    log.append(MIGRATED_KIND, [log.last_time_us, last_seq])
    logger.warning("migrated a 0.8 commit log: records 1..%d verify as a hash chain only", last_seq)
    return True


LEGACY_PAYLOAD_PREFIX = b"\x95\x01"


def open_tree(directory: str, archived: ArchivedRange | None) -> MerkleTree:
    """The ledger's tree over ``<directory>/tree.hashes``; for a node that joined from a
    snapshot (``archived.joined_at``) the file holds the hashes after the snapshot's
    offset and the tree starts from the compact range there (``merkle.BasedHashStore``)."""
    store: HashStore = FileHashStore(os.path.join(directory, TREE_FILE))
    if archived is not None and archived.joined_at:
        store = BasedHashStore(store, archived.joined_at, archived.joined_frontier)
    return MerkleTree(store)


def _leaf(payload: bytes) -> bytes:
    context = _leaf_context.copy()
    context.update(payload)
    return context.digest()


__all__ = ["LedgerWriter", "migrate_legacy_log"]
