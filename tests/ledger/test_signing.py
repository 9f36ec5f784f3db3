"""Ed25519 keys: text forms (Go sumdb/note vectors), files 0600, env, algorithm ids, ranges."""

from __future__ import annotations

import os
import stat

import pytest

from cosmictron.ledger.errors import AlgorithmRefused, KeyUnavailable, SignatureInvalid
from cosmictron.ledger.signing import (
    KEY_ENV,
    KeyRing,
    SigningKey,
    VerifierKey,
    check_algorithm,
    fingerprint,
    load_key,
    load_key_from_env,
    load_or_create_key,
    save_key,
)

# The example key of golang.org/x/mod/sumdb/note (the reference implementation).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"


def test_reference_key_round_trips_and_derives_its_key_id():
    key = SigningKey.from_text(GO_SKEY)
    assert key.name == "PeterNeumann"
    assert key.key_id.hex() == "c74f20a3"
    assert key.to_text() == GO_SKEY
    assert key.verifier.to_text() == GO_VKEY
    assert VerifierKey.from_text(GO_VKEY) == key.verifier
    assert key.fingerprint == fingerprint(key.verifier.public_key)
    assert len(key.fingerprint) == 32
    assert repr(key.seed) not in repr(key)  # a key printed in a log leaks nothing


@pytest.mark.parametrize(
    "text",
    [
        GO_VKEY.replace("c74f20a3", "c74f20a4"),  # wrong key id
        "PeterNeumann+c74f20a3",  # missing key
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # length
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!",  # not base64
    ],
)
def test_malformed_verifier_keys_are_refused(text):
    with pytest.raises(KeyUnavailable):
        VerifierKey.from_text(text)


def test_unknown_key_algorithm_is_refused():
    with pytest.raises(AlgorithmRefused):  # type byte 0x65 instead of 0x01
        VerifierKey.from_text("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(AlgorithmRefused):
        SigningKey.from_text(GO_SKEY.replace("+AYEK", "+AoEK"))


def test_mangled_signing_keys_are_refused():
    for i in range(len(GO_SKEY)):
        mangled = GO_SKEY[:i] + chr(ord(GO_SKEY[i]) + 1) + GO_SKEY[i + 1 :]
        with pytest.raises((KeyUnavailable, AlgorithmRefused)):
            SigningKey.from_text(mangled)


def test_sign_and_verify():
    key = SigningKey.generate("example.org/db")
    sig = key.sign(b"message")
    key.verifier.verify(b"message", sig)
    with pytest.raises(SignatureInvalid, match="bad_signature"):
        key.verifier.verify(b"messagf", sig)
    with pytest.raises(SignatureInvalid, match="bad_signature"):
        SigningKey.generate("example.org/db").verifier.verify(b"message", sig)


def test_algorithm_ids():
    assert check_algorithm("hash", "SHA256") == "sha256"
    assert check_algorithm("signature", "ed25519") == "ed25519"
    for weak in ["sha1", "SHA-1", "md5"]:
        with pytest.raises(AlgorithmRefused, match="too weak"):
            check_algorithm("hash", weak)
    with pytest.raises(AlgorithmRefused, match="unknown hash"):
        check_algorithm("hash", "blake3")
    with pytest.raises(AlgorithmRefused, match="unknown signature"):
        check_algorithm("signature", "rsa")


def test_key_file_is_0600_and_loads(tmp_path):
    path = tmp_path / "signing.key"
    key = SigningKey.generate("cosmictron/db1")
    save_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key
    os.chmod(path, 0o644)
    with pytest.raises(KeyUnavailable, match="permissions"):
        load_key(path)
    with pytest.raises(KeyUnavailable, match="missing"):
        load_key(tmp_path / "nope.key")
    os.chmod(path, 0o600)
    path.write_text("PRIVATE+KEY+garbage\n")
    with pytest.raises(KeyUnavailable, match="malformed"):
        load_key(path)


def test_load_or_create_makes_the_key_once(tmp_path):
    path = tmp_path / "k"
    first = load_or_create_key(path, "cosmictron/db1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path, "cosmictron/db1") == first


def test_key_from_environment():
    key = SigningKey.generate("cosmictron/db1")
    assert load_key_from_env({KEY_ENV: key.to_text()}) == key
    assert load_key_from_env({}) is None
    assert load_key_from_env({KEY_ENV: "  "}) is None
    with pytest.raises(KeyUnavailable, match="env_malformed"):
        load_key_from_env({KEY_ENV: "not a key"})


def test_key_ring_ranges():
    a = SigningKey.generate("cosmictron/db")
    b = SigningKey.generate("cosmictron/db")
    c = SigningKey.generate("cosmictron/db")
    ring = KeyRing()
    ring.add(a.verifier, 1)
    ring.rotate(a.fingerprint, b.verifier, 100)  # record 100 is signed by both
    ring.revoke(b.fingerprint, 200)
    ring.add(c.verifier, 200)
    assert ring.key_for(a.fingerprint, 1) == a.verifier
    assert ring.key_for(a.fingerprint, 100) == a.verifier
    assert ring.key_for(b.fingerprint, 100) == b.verifier
    assert ring.key_for(b.fingerprint, 199) == b.verifier
    ring.verify(c.fingerprint, 5000, b"x", c.sign(b"x"))
    with pytest.raises(SignatureInvalid, match="key_out_of_range"):  # retired key
        ring.verify(a.fingerprint, 101, b"x", a.sign(b"x"))
    with pytest.raises(SignatureInvalid, match="key_out_of_range"):  # revoked key
        ring.key_for(b.fingerprint, 200)
    with pytest.raises(SignatureInvalid, match="key_out_of_range"):  # before it was added
        ring.key_for(c.fingerprint, 150)
    with pytest.raises(SignatureInvalid, match="unknown_key"):
        ring.key_for(bytes(32), 5)
    with pytest.raises(SignatureInvalid, match="bad_signature"):
        ring.verify(c.fingerprint, 300, b"x", c.sign(b"y"))
    with pytest.raises(ValueError, match="after one at"):
        ring.add(SigningKey.generate("n").verifier, 10)
    with pytest.raises(ValueError, match="not active"):
        ring.rotate(a.fingerprint, SigningKey.generate("n").verifier, 300)
    with pytest.raises(ValueError, match="added before"):
        ring.add(c.verifier, 400)
    assert [(r.first, r.last) for r in ring.ranges()] == [(1, 100), (100, 199), (200, None)]
