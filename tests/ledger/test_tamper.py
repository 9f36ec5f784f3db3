"""The tamper suite: a real database's ledger, then one fault at a time, each named exactly.

A database (signing = "event", a checkpoint every 50 records, an RFC 3161 anchor from
the local ``openssl ts`` TSA every 100 transactions, a key rotation half way) commits a
few hundred transactions (10,000 in the soak run); each test copies its data
directory, damages it the way an attacker or a failing disk would, and checks that
``cosmictron.ledger.verify`` reports the fault's stable code and its first bad sequence
number. The attacker is given the tools to make a fault look well-formed (the frame's
crc is recomputed; where it says so, the record is re-signed with a key the attacker
holds); the plain bit flip keeps the old crc. Untampered, SIGKILLed, hot-swapped,
bulk-loaded and restored databases verify ok.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from cosmictron import Database, DurabilityConfig
from cosmictron.errors import CorruptLog, InvalidRequest
from cosmictron.host.backup import restore
from cosmictron.ledger.anchor import parse_anchor_body, read_side_anchors, token_response
from cosmictron.ledger.checkpoint import Checkpoint, sign_checkpoint
from cosmictron.ledger.errors import KeyUnavailable
from cosmictron.ledger.logread import LogReader
from cosmictron.ledger.record_format import (
    ANCHOR_KIND,
    BODY,
    CHECKPOINT_KIND,
    HASH_ALG,
    KEY_FP,
    KEY_REVOKED_KIND,
    KEY_ROTATED_KIND,
    KIND,
    SIGNATURE,
    TIME_US,
    TX_KIND,
    signing_message,
)
from cosmictron.ledger.signing import SigningKey, load_key, save_key
from cosmictron.ledger.tsa import load_certificates, timestamp
from cosmictron.ledger.verifier import read_side_checkpoints, verify

from .conftest import LocalTsa

MODULE = textwrap.dedent(
    """
    from cosmictron import table, reducer, ReducerContext, field

    @table(name="item", public=True)
    class Item:
        id: int = field(primary_key=True, auto_inc=True)
        text: str = ""

    @reducer
    def add(ctx: ReducerContext, text: str) -> int:
        return Item.insert(Item(text=text)).id
    """
)

CI_TRANSACTIONS = 400
ANCHOR_EVERY = 100
"""Transactions between anchoring rounds: 4 anchors in CI (two before the rotation)."""
SOAK_TRANSACTIONS = 10_000
FRAME = struct.Struct("<IIQ")
SEGMENT_HEADER = struct.Struct("<8sQ")


def config(**overrides: Any) -> DurabilityConfig:
    fields = {
        **vars(DurabilityConfig.from_profile("development")),
        "signing": "event",
        "checkpoint_interval_records": 50,
        "checkpoint_interval_ms": 3_600_000,
        **overrides,
    }
    return DurabilityConfig(**fields)


@dataclass
class Built:
    """A closed database's data directory, and what the attacker kept from it."""

    path: Path
    old_key: SigningKey
    rotation_seq: int
    halfway: Path
    module: Path


def anchored_config(tsa: LocalTsa | None) -> DurabilityConfig:
    """``config()``, anchoring to the local TSA (rounds run by ``anchor_now``)."""
    if tsa is None:
        return config()
    return config(
        anchor_tsa_urls=(tsa.url,),
        anchor_trust_roots=str(tsa.path("ca.pem")),
        anchor_interval_ms=3_600_000,
    )


def build(root: Path, transactions: int, tsa: LocalTsa | None = None) -> Built:
    module = root / "app.py"
    module.write_text(MODULE)
    path = root / "data"
    db = Database.open(path, module=str(module), durability=anchored_config(tsa))
    for i in range(transactions // 2):
        db.call("add", f"first {i}")
        if tsa is not None and i % ANCHOR_EVERY == ANCHOR_EVERY - 1:
            assert db.anchor_now(), "the local TSA answers"
    db.close()
    halfway = root / "halfway"
    shutil.copytree(path, halfway)
    db = Database.open(path, module=str(module), durability=anchored_config(tsa))
    old_key = load_key(path / "ledger" / "signing.key")
    public = db.rotate_signing_key()
    rotation_seq = db.core.persistence.next_offset - 1
    assert public.fingerprint != old_key.fingerprint
    for i in range(transactions - transactions // 2):
        db.call("add", f"second {i}")
        if tsa is not None and i % ANCHOR_EVERY == ANCHOR_EVERY - 1:
            assert db.anchor_now(), "the local TSA answers"
    db.close()
    return Built(path, old_key, rotation_seq, halfway, module)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, local_tsa: LocalTsa) -> Built:
    return build(tmp_path_factory.mktemp("ledger"), CI_TRANSACTIONS, local_tsa)


@pytest.fixture
def copy(built: Built, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(built.path, target)
    return target


# -- tools of the attacker: read and rewrite the log with valid frames --------------------


def payloads(data_dir: Path) -> list[bytes]:
    return [r.payload for r in LogReader(str(data_dir))]


def rewrite(data_dir: Path, records: list[bytes]) -> None:
    """Replace the whole log by one segment of ``records``, each frame with a good crc."""
    log_dir = data_dir / "log"
    for name in os.listdir(log_dir):
        os.unlink(log_dir / name)
    parts = [SEGMENT_HEADER.pack(b"CTLOG\x00\x02\x00", 1)]
    for payload in records:
        crc = zlib.crc32(struct.pack("<Q", 0), zlib.crc32(payload))
        parts += [FRAME.pack(len(payload), crc, 0), payload]
    (log_dir / f"{1:020d}.log").write_bytes(b"".join(parts))


def fields_of(payload: bytes) -> list[Any]:
    return msgpack.unpackb(payload, raw=False)


def pack(fields: list[Any]) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def resign(fields: list[Any], key: SigningKey) -> bytes:
    fields[KEY_FP] = key.fingerprint
    fields[SIGNATURE] = None
    fields[SIGNATURE] = key.sign(signing_message(fields))
    return pack(fields)


def tx_seqs(records: list[bytes], after: int = 0) -> list[int]:
    return [i + 1 for i, p in enumerate(records) if i + 1 > after and fields_of(p)[KIND] == TX_KIND]


def assert_fault(data_dir: Path, code: str, seq: int, **kwargs: Any) -> None:
    result = verify(data_dir, **kwargs)
    assert not result.ok, result.lines()
    assert (result.code, result.first_bad_seq) == (code, seq), result.lines()
    assert result.lines()[0].startswith(f"{code} at seq {seq}: ")


# -- the untampered log --------------------------------------------------------------------


def test_the_untampered_log_verifies(built: Built) -> None:
    result = verify(built.path)
    assert result.ok, result.lines()
    records = payloads(built.path)
    assert result.records == len(records)
    checkpoints = [p for p in records if fields_of(p)[KIND] == CHECKPOINT_KIND]
    assert result.checkpoints == len(checkpoints) >= CI_TRANSACTIONS // 50
    assert len(result.keys) == 2, "the first key and the rotated-in key"
    rotation = fields_of(records[built.rotation_seq - 1])
    assert rotation[KIND] == KEY_ROTATED_KIND and len(rotation[SIGNATURE]) == 2


def test_the_tree_file_holds_the_checkpointed_roots(built: Built) -> None:
    side = read_side_checkpoints(str(built.path))
    assert side, "checkpoints reach the side file"
    last = Checkpoint.from_text(side[-1]["note"].split("\n\n")[0] + "\n")
    assert last.size == side[-1]["seq"] - 1


# -- faults ----------------------------------------------------------------------------------


def test_a_flipped_bit_in_a_payload_with_its_crc_kept_is_log_damage(copy: Path) -> None:
    segment = sorted((copy / "log").glob("*.log"))[-1]
    records = list(LogReader(str(copy)))
    target = records[len(records) // 2]
    data = bytearray(segment.read_bytes())
    if target.path != str(segment):  # the middle record is in an earlier segment
        segment = Path(target.path)
        data = bytearray(segment.read_bytes())
    data[target.byte_offset + FRAME.size + 40] ^= 0x01
    segment.write_bytes(bytes(data))
    assert_fault(copy, "log_damaged", target.seq)


def test_a_flipped_bit_in_a_payload_with_a_fixed_crc_fails_its_signature(copy: Path) -> None:
    records = payloads(copy)
    seq = tx_seqs(records)[len(records) // 3]
    payload = bytearray(records[seq - 1])
    at = payload.find(b"first ") + 2
    payload[at] ^= 0x01  # "first" -> "fhrst": still a well-formed record
    records[seq - 1] = bytes(payload)
    rewrite(copy, records)
    assert_fault(copy, "signature_invalid", seq)


def test_a_flipped_bit_in_a_signature(copy: Path) -> None:
    records = payloads(copy)
    seq = tx_seqs(records)[10]
    fields = fields_of(records[seq - 1])
    signature = bytearray(fields[SIGNATURE])
    signature[5] ^= 0x80
    fields[SIGNATURE] = bytes(signature)
    records[seq - 1] = pack(fields)
    rewrite(copy, records)
    assert_fault(copy, "signature_invalid", seq)


def test_a_deleted_record(copy: Path) -> None:
    records = payloads(copy)
    del records[99]
    rewrite(copy, records)
    assert_fault(copy, "seq_mismatch", 100)


def test_an_inserted_record(copy: Path) -> None:
    records = payloads(copy)
    records.insert(120, records[60])
    rewrite(copy, records)
    assert_fault(copy, "seq_mismatch", 121)


def test_two_swapped_records(copy: Path) -> None:
    records = payloads(copy)
    records[130], records[131] = records[131], records[130]
    rewrite(copy, records)
    assert_fault(copy, "seq_mismatch", 131)


def test_a_log_truncated_below_a_checkpoint(copy: Path) -> None:
    records = payloads(copy)
    side = read_side_checkpoints(str(copy))
    keep = side[-1]["size"] - 10
    rewrite(copy, records[:keep])
    assert_fault(copy, "truncated", keep + 1)


def test_a_truncated_log_is_refused_on_open(copy: Path, built: Built) -> None:
    records = payloads(copy)
    side = read_side_checkpoints(str(copy))
    keep = side[-1]["size"] - 10
    rewrite(copy, records[:keep])
    with pytest.raises(CorruptLog, match="rollback") as refused:
        Database.open(copy, module=str(built.module), durability=config())
    assert refused.value.tx_offset == keep + 1


def test_a_rollback_of_the_whole_data_directory(built: Built, tmp_path: Path) -> None:
    """The side file rolled back too: only a checkpoint kept elsewhere can tell."""
    old = tmp_path / "old"
    shutil.copytree(built.halfway, old)
    assert verify(old).ok, "the old copy is a consistent history by itself"
    latest = read_side_checkpoints(str(built.path))[-1]["note"]
    old_length = len(payloads(old))
    assert_fault(old, "rollback", old_length + 1, checkpoints=[latest])


def test_a_forked_checkpoint(copy: Path, built: Built) -> None:
    """The key holder signs a second tree head for a size the log already has."""
    side_file = copy / "ledger" / "checkpoints"
    entry = read_side_checkpoints(str(copy))[1]
    origin = entry["origin"]
    forked = Checkpoint.with_time(origin, entry["size"], bytes(32), 1)
    note = sign_checkpoint(forked, SigningKey(origin, built.old_key.seed))
    with side_file.open("a") as side:
        side.write(json.dumps({"seq": entry["seq"], "size": entry["size"], "note": note}) + "\n")
    assert_fault(copy, "checkpoint_fork", entry["size"])


def test_a_record_signed_by_a_retired_key(copy: Path, built: Built) -> None:
    records = payloads(copy)
    seq = tx_seqs(records, after=built.rotation_seq)[5]
    origin = fields_of(records[0])[5]
    records[seq - 1] = resign(fields_of(records[seq - 1]), SigningKey(origin, built.old_key.seed))
    rewrite(copy, records)
    assert_fault(copy, "key_out_of_range", seq)


def test_a_rotation_signed_by_one_key_only(copy: Path, built: Built) -> None:
    records = payloads(copy)
    fields = fields_of(records[built.rotation_seq - 1])
    fields[SIGNATURE] = fields[SIGNATURE][:1]
    records[built.rotation_seq - 1] = pack(fields)
    rewrite(copy, records)
    assert_fault(copy, "rotation_unsigned", built.rotation_seq)


def test_a_record_from_another_log(copy: Path, built: Built, tmp_path: Path) -> None:
    root = tmp_path / "other"
    root.mkdir()
    (root / "app.py").write_text(MODULE)
    db = Database.open(root / "data", module=str(root / "app.py"), durability=config())
    for i in range(60):
        db.call("add", f"first {i}")
    db.close()
    records = payloads(copy)
    foreign = payloads(root / "data")
    seq = 40
    records[seq - 1] = foreign[seq - 1]
    rewrite(copy, records)
    assert_fault(copy, "wrong_origin", seq)


def test_a_backwards_clock(copy: Path, built: Built) -> None:
    records = payloads(copy)
    seq = tx_seqs(records)[20]
    fields = fields_of(records[seq - 1])
    fields[TIME_US] = fields_of(records[seq - 2])[TIME_US] - 1_000_000
    origin = fields[5]
    records[seq - 1] = resign(fields, SigningKey(origin, built.old_key.seed))
    rewrite(copy, records)
    assert_fault(copy, "time_backwards", seq)


def test_a_sha1_algorithm_id(copy: Path) -> None:
    records = payloads(copy)
    seq = tx_seqs(records)[30]
    fields = fields_of(records[seq - 1])
    fields[HASH_ALG] = "sha1"
    records[seq - 1] = pack(fields)
    rewrite(copy, records)
    assert_fault(copy, "algorithm_refused", seq)


def test_a_changed_record_is_refused_on_open_naming_it(copy: Path, built: Built) -> None:
    """Past the last checkpoint, a re-signed, re-chained forgery still fails its check."""
    records = payloads(copy)
    side = read_side_checkpoints(str(copy))
    last_seq = side[-1]["seq"]
    assert last_seq == len(records), "the clean close wrote the last checkpoint"
    fields = fields_of(records[-1])
    fields[HASH_ALG] = "sha1"
    records[-1] = pack(fields)
    rewrite(copy, records)
    with pytest.raises(CorruptLog, match="algorithm_refused") as refused:
        Database.open(copy, module=str(built.module), durability=config())
    assert refused.value.tx_offset == last_seq


# -- RFC 3161 anchors ---------------------------------------------------------------------


def anchor_seqs(records: list[bytes], before: int | None = None) -> list[int]:
    return [
        i + 1
        for i, p in enumerate(records)
        if fields_of(p)[KIND] == ANCHOR_KIND and (before is None or i + 1 < before)
    ]


def tsa_roots(local_tsa: LocalTsa, name: str = "ca.pem") -> list[Any]:
    return load_certificates(local_tsa.path(name).read_bytes())


def test_every_anchor_verifies_with_our_verifier_and_with_openssl(
    built: Built, local_tsa: LocalTsa, tmp_path: Path
) -> None:
    records = payloads(built.path)
    seqs = anchor_seqs(records)
    assert len(seqs) == CI_TRANSACTIONS // ANCHOR_EVERY
    assert len(anchor_seqs(records, before=built.rotation_seq)) >= 2
    result = verify(built.path, tsa_roots=tsa_roots(local_tsa))
    assert result.ok and result.anchors == len(seqs) and result.anchors_rooted, result.lines()
    assert [e["seq"] for e in read_side_anchors(built.path)] == seqs
    for seq in seqs:
        anchor = parse_anchor_body(fields_of(records[seq - 1])[BODY])
        note = fields_of(records[anchor.checkpoint_seq - 1])[BODY][1]
        (tmp_path / "note.txt").write_text(note, encoding="utf-8")
        (tmp_path / "token.tsr").write_bytes(token_response(anchor.token))
        checked = local_tsa.openssl(
            "ts", "-verify", "-data", str(tmp_path / "note.txt"), "-in",
            str(tmp_path / "token.tsr"), "-CAfile", str(local_tsa.path("ca.pem")),
        )  # fmt: skip
        assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stderr


def _replace_token(copy: Path, built: Built, seq: int, token: bytes, records: list[bytes]) -> None:
    """Put ``token`` in the anchor record at ``seq``, re-signed with the attacker's key."""
    fields = fields_of(records[seq - 1])
    fields[BODY][2] = token
    records[seq - 1] = resign(fields, SigningKey(fields[5], built.old_key.seed))


def test_a_swapped_token(copy: Path, built: Built, local_tsa: LocalTsa) -> None:
    records = payloads(copy)
    first, second = anchor_seqs(records, before=built.rotation_seq)[:2]
    token_1 = fields_of(records[first - 1])[BODY][2]
    token_2 = fields_of(records[second - 1])[BODY][2]
    _replace_token(copy, built, first, token_2, records)
    _replace_token(copy, built, second, token_1, records)
    rewrite(copy, records)
    assert_fault(copy, "anchor_mismatch", first, tsa_roots=tsa_roots(local_tsa))


def test_a_corrupted_token(copy: Path, built: Built, local_tsa: LocalTsa) -> None:
    records = payloads(copy)
    seq = anchor_seqs(records, before=built.rotation_seq)[1]
    token = bytearray(fields_of(records[seq - 1])[BODY][2])
    token[-20] ^= 0x01  # inside the TSA's signature, the token's last field
    _replace_token(copy, built, seq, bytes(token), records)
    rewrite(copy, records)
    assert_fault(copy, "anchor_invalid", seq, tsa_roots=tsa_roots(local_tsa))


def test_a_token_from_an_untrusted_tsa(copy: Path, built: Built, local_tsa: LocalTsa) -> None:
    """A second OpenSSL TSA under another root stamps the very same checkpoint."""
    records = payloads(copy)
    seq = anchor_seqs(records, before=built.rotation_seq)[0]
    anchor = parse_anchor_body(fields_of(records[seq - 1])[BODY])
    note = fields_of(records[anchor.checkpoint_seq - 1])[BODY][1]
    other = timestamp(local_tsa.other_url, note.encode(), tsa_roots(local_tsa, "other-ca.pem"))
    _replace_token(copy, built, seq, other.der, records)
    rewrite(copy, records)
    assert_fault(copy, "anchor_untrusted", seq, tsa_roots=tsa_roots(local_tsa))


def test_a_log_truncated_below_an_anchor(copy: Path, local_tsa: LocalTsa) -> None:
    """The checkpoints side file is gone too: the anchors side file still tells."""
    records = payloads(copy)
    last_anchor = read_side_anchors(copy)[-1]["seq"]
    keep = last_anchor - 1
    rewrite(copy, records[:keep])
    (copy / "ledger" / "checkpoints").unlink()
    assert_fault(copy, "truncated", keep + 1, tsa_roots=tsa_roots(local_tsa))


# -- histories that must verify ----------------------------------------------------------


def test_a_database_reopened_after_verification_keeps_verifying(copy: Path, built: Built) -> None:
    db = Database.open(copy, module=str(built.module), durability=config())
    db.call("add", "after reopen")
    db.close()
    result = verify(copy)
    assert result.ok, result.lines()


WRITER = textwrap.dedent(
    """
    import sys
    from cosmictron import Database, DurabilityConfig
    fields = {**vars(DurabilityConfig.from_profile("development")), "signing": "event",
              "checkpoint_interval_records": 50}
    db = Database.open(sys.argv[1], module=sys.argv[2], durability=DurabilityConfig(**fields))
    i = 0
    while True:
        db.call("add", f"n {i}")
        i += 1
        if i == 200:
            print("ready", flush=True)
    """
)


def test_sigkill_with_a_torn_tail_verifies_and_reopens(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(MODULE)
    (tmp_path / "writer.py").write_text(WRITER)
    data = tmp_path / "data"
    writer = subprocess.Popen(
        [sys.executable, str(tmp_path / "writer.py"), str(data), str(tmp_path / "app.py")],
        stdout=subprocess.PIPE,
        env={**os.environ},
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == b"ready"
    time.sleep(0.2)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    segment = sorted((data / "log").glob("*.log"))[-1]
    last = list(LogReader(str(data)))[-1]
    frame = segment.read_bytes()[
        last.byte_offset : last.byte_offset + FRAME.size + len(last.payload)
    ]
    with segment.open("r+b") as file:  # a torn write: half of a frame after the last
        end = len(file.read().rstrip(b"\0"))
        file.seek(end)
        file.write(frame[: len(frame) // 2])
    result = verify(data)
    assert result.ok, result.lines()
    db = Database.open(data, module=str(tmp_path / "app.py"), durability=config())
    db.call("add", "after the crash")
    db.close()
    result = verify(data)
    assert result.ok, result.lines()


def test_hot_swap_bulk_load_backup_and_restore_verify(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(MODULE)
    data = tmp_path / "data"
    db = Database.open(data, module=str(tmp_path / "app.py"), durability=config())
    for i in range(30):
        db.call("add", f"n {i}")
    swapped = MODULE + "\n\n@reducer\ndef ping(ctx: ReducerContext) -> int:\n    return 1\n"
    db.update_module(swapped.encode(), filename="app.py")
    db.bulk_insert("item", [{"text": f"bulk {i}"} for i in range(500)])
    db.call("add", "after bulk")
    db.backup(tmp_path / "backup.tar")
    db.close()
    assert verify(data).ok, verify(data).lines()
    restored = restore(tmp_path / "backup.tar", tmp_path / "restored")
    del restored
    copy = Database.open(tmp_path / "restored", durability=config())
    copy.call("add", "after restore")
    copy.close()
    result = verify(tmp_path / "restored")
    assert result.ok, result.lines()


@pytest.mark.soak
def test_soak_ten_thousand_transactions_and_every_fault(
    tmp_path: Path, local_tsa: LocalTsa
) -> None:
    built = build(tmp_path, SOAK_TRANSACTIONS, local_tsa)
    result = verify(built.path, tsa_roots=tsa_roots(local_tsa))
    assert result.ok and result.anchors == SOAK_TRANSACTIONS // ANCHOR_EVERY, result.lines()
    records = payloads(built.path)
    for seq in range(2, len(records), 997):
        copy = tmp_path / f"copy-{seq}"
        shutil.copytree(built.path, copy)
        changed = list(records)
        del changed[seq - 1]
        rewrite(copy, changed)
        assert_fault(copy, "seq_mismatch", seq)


# -- key revocation ------------------------------------------------------------------------


def test_a_record_signed_by_a_revoked_key(tmp_path: Path) -> None:
    """A key left valid by a key swap outside the database, then revoked: its signature
    counts before the revocation record and is refused from it on."""
    (tmp_path / "app.py").write_text(MODULE)
    data = tmp_path / "data"
    db = Database.open(data, module=str(tmp_path / "app.py"), durability=config())
    for i in range(20):
        db.call("add", f"first {i}")
    db.close()
    first = load_key(data / "ledger" / "signing.key")
    swapped = SigningKey.generate("operator")
    swapped_path = tmp_path / "swapped.key"
    save_key(swapped, swapped_path)
    durability = config(signing_key_path=str(swapped_path))
    db = Database.open(data, module=str(tmp_path / "app.py"), durability=durability)
    db.call("add", "both keys valid")
    before = db.core.persistence.next_offset - 1
    origin = fields_of(payloads(data)[0])[5]
    with pytest.raises(InvalidRequest, match="rotate it out instead"):
        db.revoke_signing_key(SigningKey(origin, swapped.seed).verifier)
    revoked = db.revoke_signing_key(SigningKey(origin, first.seed).verifier.to_text())
    assert revoked.fingerprint == first.fingerprint
    revocation_seq = db.core.persistence.next_offset - 1
    with pytest.raises(InvalidRequest, match="nothing to revoke"):
        db.revoke_signing_key(revoked.fingerprint)
    for i in range(20):
        db.call("add", f"second {i}")
    db.close()
    assert verify(data).ok, verify(data).lines()
    records = payloads(data)
    assert fields_of(records[revocation_seq - 1])[KIND] == KEY_REVOKED_KIND
    old = SigningKey(origin, first.seed)

    # Before the revocation the first key still counted: a record it re-signs passes its
    # own checks (only the next record's link to it breaks).
    earlier = tmp_path / "earlier"
    shutil.copytree(data, earlier)
    changed = list(records)
    changed[before - 1] = resign(fields_of(changed[before - 1]), old)
    rewrite(earlier, changed)
    assert_fault(earlier, "chain_broken", before + 1)

    # After it, the same forgery is refused at its record.
    later = tmp_path / "later"
    shutil.copytree(data, later)
    seq = tx_seqs(records, after=revocation_seq)[3]
    changed = list(records)
    changed[seq - 1] = resign(fields_of(changed[seq - 1]), old)
    rewrite(later, changed)
    assert_fault(later, "key_out_of_range", seq)

    # A configured key that was revoked is refused on open, naming it.
    with pytest.raises(KeyUnavailable, match="was revoked or rotated out"):
        Database.open(data, module=str(tmp_path / "app.py"), durability=config())
