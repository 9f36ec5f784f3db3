"""Signed notes and checkpoints: the C2SP and Go vectors, strict parsing, verification."""

from __future__ import annotations

import base64
import hashlib

import pytest

from cosmictron.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from cosmictron.ledger.errors import NoteMalformed, SignatureInvalid
from cosmictron.ledger.merkle import EMPTY_ROOT, MerkleTree
from cosmictron.ledger.note import EM_DASH, parse_note, sign_note, verify_note
from cosmictron.ledger.signing import SigningKey, VerifierKey

# c2sp.org/signed-note's example: this verifier key verifies this note.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM_DASH} example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# golang.org/x/mod/sumdb/note's example: this key signs this text into exactly this note.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + f"\n{EM_DASH} PeterNeumann "
    + "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
    + "\n"
)


def test_spec_example_verifies():
    note, verified = verify_note(SPEC_NOTE, [VerifierKey.from_text(SPEC_VKEY)])
    assert note.text == "This is an example message.\n"
    assert verified[0].name == "example.com/foo"


def test_go_reference_signature_is_reproduced_byte_for_byte():
    key = SigningKey.from_text(GO_SKEY)
    assert sign_note(GO_TEXT, [key]) == GO_NOTE
    assert parse_note(GO_NOTE).to_text() == GO_NOTE


def test_unknown_signatures_are_ignored_but_a_bad_known_one_rejects():
    spec = VerifierKey.from_text(SPEC_VKEY)
    other = SigningKey.generate("example.com/foo")  # same name, other id: ignored
    cosigned = SPEC_NOTE + sign_note("This is an example message.\n", [other]).split("\n\n")[1]
    verify_note(cosigned, [spec])
    with pytest.raises(SignatureInvalid, match="no_trusted_signature"):
        verify_note(SPEC_NOTE, [other.verifier])
    flipped = bytearray(base64.b64decode(SPEC_NOTE.split(" ")[-1]))
    flipped[10] ^= 1
    bad = SPEC_NOTE.rsplit(" ", 1)[0] + " " + base64.b64encode(flipped).decode() + "\n"
    with pytest.raises(SignatureInvalid, match="bad_signature"):
        verify_note(bad, [spec])
    with pytest.raises(SignatureInvalid, match="bad_signature"):  # text changed
        verify_note(SPEC_NOTE.replace("example message", "example massage"), [spec])


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (b"text\n\n\xff\n", "not_utf8"),
        ("te\x01xt\n\n" + SPEC_NOTE.split("\n\n")[1], "control_character"),
        ("text\n" + SPEC_NOTE.split("\n\n")[1], "no_signatures"),
        ("text\n\n", "no_signatures"),
        ("text", "empty_text"),
        (SPEC_NOTE.replace(EM_DASH, "-"), "bad_signature_line"),
        (SPEC_NOTE.rstrip("\n"), "empty_text"),
        (SPEC_NOTE.replace("example.com/foo ", "example.com/foo  "), "bad_signature_line"),
        (SPEC_NOTE.replace("example.com/foo ", "exa+mple "), "bad_key_name"),
        (SPEC_NOTE.replace("Uw2QOkn8", "Uw2QOkn!"), "bad_base64"),
        ("text\n\n" + f"{EM_DASH} k AAAA\n", "bad_base64"),
        ("text\n\n" + f"{EM_DASH} k AAAAAAAA\n" * 101, "too_many_signatures"),
    ],
)
def test_malformed_notes_name_the_problem(note, reason):
    with pytest.raises(NoteMalformed, match=reason):
        parse_note(note)


def _tree(n: int) -> MerkleTree:
    tree = MerkleTree()
    tree.extend(i.to_bytes(8, "big") for i in range(n))
    return tree


def test_checkpoint_round_trip_and_spec_layout():
    key = SigningKey.generate("cosmictron/db-7f3a")
    tree = _tree(1000)
    cp = Checkpoint.with_time("cosmictron/db-7f3a", tree.size, tree.root(), 1_765_000_000_000_000)
    signed = sign_checkpoint(cp, key)
    lines = signed.split("\n")
    assert lines[:4] == [
        "cosmictron/db-7f3a",
        "1000",
        base64.b64encode(tree.root()).decode(),
        "time 1765000000000000",
    ]
    assert lines[4] == "" and lines[5].startswith(f"{EM_DASH} cosmictron/db-7f3a ")
    opened = open_checkpoint(signed, key.verifier, origin="cosmictron/db-7f3a")
    assert opened == cp and opened.time_us == 1_765_000_000_000_000
    empty = Checkpoint("cosmictron/db-7f3a", 0, EMPTY_ROOT)
    assert open_checkpoint(sign_checkpoint(empty, key), key.verifier).size == 0


def test_spec_checkpoint_example_parses():
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.from_text(text)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.to_text() == text


def test_rotation_checkpoint_carries_both_signatures():
    old, new = SigningKey.generate("cosmictron/db"), SigningKey.generate("cosmictron/db")
    cp = Checkpoint("cosmictron/db", 5, hashlib.sha256(b"r").digest())
    signed = sign_checkpoint(cp, [old, new])
    assert open_checkpoint(signed, old.verifier) == cp
    assert open_checkpoint(signed, new.verifier) == cp
    assert len(parse_note(signed).signatures) == 2


def test_checkpoint_of_another_log_or_key_is_refused():
    key = SigningKey.generate("cosmictron/a")
    signed = sign_checkpoint(Checkpoint("cosmictron/a", 1, bytes(32)), key)
    with pytest.raises(NoteMalformed, match="wrong_origin"):
        open_checkpoint(signed, key.verifier, origin="cosmictron/b")
    with pytest.raises(SignatureInvalid, match="no_trusted_signature"):
        open_checkpoint(signed, SigningKey.generate("cosmictron/a").verifier)
    other_name = SigningKey.generate("someone-else")
    text = Checkpoint("cosmictron/a", 1, bytes(32)).to_text()
    with pytest.raises(SignatureInvalid, match="no_trusted_signature"):  # key not the origin
        open_checkpoint(sign_note(text, [other_name]), other_name.verifier)
    with pytest.raises(ValueError, match="does not sign as origin"):
        sign_checkpoint(Checkpoint("cosmictron/a", 1, bytes(32)), other_name)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("origin\n12\n", "too_few_lines"),
        ("origin\n012\n" + base64.b64encode(bytes(32)).decode() + "\n", "bad_tree_size"),
        ("origin\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n", "bad_tree_size"),
        ("origin\n1 \n" + base64.b64encode(bytes(32)).decode() + "\n", "bad_tree_size"),
        ("origin\n1\n" + base64.b64encode(bytes(31)).decode() + "\n", "bad_root_hash"),
        ("origin\n1\n!!!!\n", "bad_root_hash"),
        ("origin\n1\n" + base64.b64encode(bytes(32)).decode()[:-1] + "\n", "bad_root_hash"),
        ("\n1\n" + base64.b64encode(bytes(32)).decode() + "\n", "bad_origin"),
        ("o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n", "bad_extension"),
        ("o\n1\n" + base64.b64encode(bytes(32)).decode() + "\ntime 01\n", "bad_time"),
        ("o\n1\n" + base64.b64encode(bytes(32)).decode() + "\ntime soon\n", "bad_time"),
        ("o\n1\n" + base64.b64encode(bytes(32)).decode(), "too_few_lines"),
    ],
)
def test_malformed_checkpoints_name_the_problem(text, reason):
    with pytest.raises(NoteMalformed, match=reason):
        Checkpoint.from_text(text)


def test_signed_malformed_checkpoint_is_refused_after_the_signature_checks():
    key = SigningKey.generate("o")
    signed = sign_note("o\n012\n" + base64.b64encode(bytes(32)).decode() + "\n", [key])
    with pytest.raises(NoteMalformed, match="bad_tree_size"):
        open_checkpoint(signed, key.verifier)
