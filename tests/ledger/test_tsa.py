"""RFC 3161 against a real TSA (``openssl ts -reply``, tests/ledger/conftest.py).

Every token our verifier accepts is also checked with ``openssl ts -verify``, and every
forged or mismatched one is refused by both, each with the reason we expect.
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from pathlib import Path

import pytest
from asn1crypto import cms

from cosmictron.ledger import tsa
from cosmictron.ledger.checkpoint import Checkpoint, sign_checkpoint
from cosmictron.ledger.errors import TimestampInvalid, TsaUnavailable
from cosmictron.ledger.signing import SigningKey

from .conftest import OTHER_POLICY, TSA_POLICY, LocalTsa

TST_INFO_OID = "1.2.840.113549.1.9.16.1.4"


def _note() -> bytes:
    key = SigningKey.generate("cosmictron/tsa-test")
    checkpoint = Checkpoint.with_time("cosmictron/tsa-test", 42, hashlib.sha256(b"r").digest(), 1)
    return sign_checkpoint(checkpoint, key).encode()


def _roots(local_tsa: LocalTsa, name: str = "ca.pem"):
    return tsa.load_certificates(local_tsa.path(name).read_bytes())


def _openssl_verifies(local_tsa: LocalTsa, tmp_path: Path, token: bytes, data: bytes, ca="ca.pem"):
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "token.der").write_bytes(token)
    result = local_tsa.openssl(
        "ts", "-verify", "-data", str(tmp_path / "data.bin"), "-token_in",
        "-in", str(tmp_path / "token.der"), "-CAfile", str(local_tsa.path(ca)),
    )  # fmt: skip
    return result.returncode == 0 and "Verification: OK" in result.stdout


def _ask(local_tsa: LocalTsa, data: bytes, url: str | None = None, policy: str | None = None):
    request = tsa.build_request(hashlib.sha256(data).digest(), policy=policy)
    return request, tsa.request_timestamp(url or local_tsa.url, request)


def test_checkpoint_is_stamped_and_checked_by_us_and_by_openssl(local_tsa, tmp_path):
    note = _note()
    token = tsa.timestamp(local_tsa.url, note, _roots(local_tsa), policy=TSA_POLICY)
    assert token.policy == TSA_POLICY
    assert token.digest == hashlib.sha256(note).digest()
    assert token.signer.subject.rfc4514_string() == "CN=tsa,O=Cosmictron Test"
    assert _openssl_verifies(local_tsa, tmp_path, token.der, note)
    # Later, offline: the stored token alone, without the nonce.
    again = tsa.verify_token(token.der, hashlib.sha256(note).digest(), _roots(local_tsa))
    assert again.gen_time == token.gen_time and again.serial_number == token.serial_number


def test_response_is_bound_to_the_request_nonce_like_openssl(local_tsa, tmp_path):
    note = _note()
    request, response = _ask(local_tsa, note)
    tsa.verify_response(response, request, _roots(local_tsa))
    (tmp_path / "req.tsq").write_bytes(request.der)
    (tmp_path / "resp.tsr").write_bytes(response)
    ok = local_tsa.openssl(
        "ts", "-verify", "-queryfile", str(tmp_path / "req.tsq"), "-in", str(tmp_path / "resp.tsr"),
        "-CAfile", str(local_tsa.path("ca.pem")),
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    other = dataclasses.replace(request, nonce=request.nonce ^ 0x10)
    with pytest.raises(TimestampInvalid, match="nonce_mismatch"):
        tsa.verify_response(response, other, _roots(local_tsa))
    (tmp_path / "other.tsq").write_bytes(tsa.build_request(request.digest, nonce=other.nonce).der)
    refused = local_tsa.openssl(
        "ts", "-verify", "-queryfile", str(tmp_path / "other.tsq"),
        "-in", str(tmp_path / "resp.tsr"), "-CAfile", str(local_tsa.path("ca.pem")),
    )  # fmt: skip
    assert refused.returncode != 0


def test_wrong_imprint_is_refused_by_both(local_tsa, tmp_path):
    note = _note()
    token = tsa.timestamp(local_tsa.url, note, _roots(local_tsa))
    other = note.replace(b"\n42\n", b"\n43\n")
    with pytest.raises(TimestampInvalid, match="imprint_mismatch"):
        tsa.verify_token(token.der, hashlib.sha256(other).digest(), _roots(local_tsa))
    with pytest.raises(TimestampInvalid, match="imprint_mismatch"):
        tsa.verify_token(token.der, hashlib.sha256(note).digest(), _roots(local_tsa),
                         hash_algorithm="sha512")  # fmt: skip
    assert not _openssl_verifies(local_tsa, tmp_path, token.der, other)


def test_policy_is_enforced(local_tsa):
    note = _note()
    request, response = _ask(local_tsa, note)
    with pytest.raises(TimestampInvalid, match="policy_mismatch"):
        tsa.verify_response(response, request, _roots(local_tsa), policy=OTHER_POLICY)
    request, response = _ask(local_tsa, note, policy="1.3.6.1.4.1.99999.9")  # TSA refuses it
    with pytest.raises(TimestampInvalid, match="status"):
        tsa.verify_response(response, request, _roots(local_tsa))
    request, response = _ask(local_tsa, note, policy="1.3.6.1.4.1.99999.1.3")  # TSA accepts it
    assert tsa.verify_response(response, request, _roots(local_tsa)).policy.endswith(".1.3")


def test_token_from_an_untrusted_tsa_is_refused_by_both(local_tsa, tmp_path):
    note = _note()
    request, response = _ask(local_tsa, note, url=local_tsa.other_url)
    with pytest.raises(TimestampInvalid, match="untrusted_chain"):
        tsa.verify_response(response, request, _roots(local_tsa))
    token = tsa.verify_response(response, request, _roots(local_tsa, "other-ca.pem"))
    assert not _openssl_verifies(local_tsa, tmp_path, token.der, note)
    assert _openssl_verifies(local_tsa, tmp_path, token.der, note, ca="other-ca.pem")
    with pytest.raises(TimestampInvalid, match="untrusted_chain"):
        tsa.verify_response(response, request, [])


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def test_corrupted_signature_and_content_are_refused_by_both(local_tsa, tmp_path):
    note = _note()
    token = tsa.timestamp(local_tsa.url, note, _roots(local_tsa))
    digest = hashlib.sha256(note).digest()
    # The signer info comes last and has no unsigned attributes: the last byte is the
    # signature's (ECDSA's s integer).
    bad_sig = _flip(token.der, len(token.der) - 1)
    with pytest.raises(TimestampInvalid, match="bad_signature"):
        tsa.verify_token(bad_sig, digest, _roots(local_tsa))
    assert not _openssl_verifies(local_tsa, tmp_path, bad_sig, note)
    # A byte of genTime inside the signed TSTInfo: the signed messageDigest no longer fits.
    info = cms.ContentInfo.load(token.der)
    gen_time = info["content"]["encap_content_info"]["content"].parsed["gen_time"].dump()
    at = token.der.index(gen_time) + len(gen_time) - 3
    bad_time = _flip(token.der, at)
    with pytest.raises(TimestampInvalid, match="content_digest"):
        tsa.verify_token(bad_time, digest, _roots(local_tsa))
    assert not _openssl_verifies(local_tsa, tmp_path, bad_time, note)
    with pytest.raises(TimestampInvalid, match="malformed"):
        tsa.verify_token(token.der[:-40], digest, _roots(local_tsa))


def test_any_flipped_bit_is_refused_as_invalid_never_an_unexpected_error(local_tsa):
    """Every byte of a token, one bit flipped at a time: ``verify_token`` accepts the token
    or refuses it with ``TimestampInvalid``, never another exception. A flip inside the
    TSA certificate's extensions used to escape as cryptography's ``ValueError`` (its
    extensions parse when first read), which crashed ``verify`` of an archived anchor."""
    note = _note()
    token = tsa.timestamp(local_tsa.url, note, _roots(local_tsa))
    digest = hashlib.sha256(note).digest()
    roots = _roots(local_tsa)
    refused = 0
    for at in range(len(token.der)):
        try:
            tsa.verify_token(_flip(token.der, at), digest, roots)
        except TimestampInvalid:
            refused += 1
    assert refused > len(token.der) // 2  # most flips break the signature or the DER


def _cms_token(local_tsa: LocalTsa, tmp_path: Path, token: bytes, signer: str) -> bytes:
    """A token re-signed over the same TSTInfo by ``signer`` with ``openssl cms``.

    ``openssl cms`` adds contentType, signingTime and messageDigest but no ESSCertIDv2;
    it is how a misconfigured or hostile signer would make a token ``openssl ts`` refuses.
    """
    info = cms.ContentInfo.load(token)
    (tmp_path / "tst.der").write_bytes(bytes(info["content"]["encap_content_info"]["content"]))
    result = local_tsa.openssl(
        "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-nosmimecap",
        "-econtent_type", TST_INFO_OID, "-md", "sha256",
        "-signer", str(local_tsa.path(f"{signer}.pem")),
        "-inkey", str(local_tsa.path(f"{signer}.key")),
        "-in", str(tmp_path / "tst.der"), "-out", str(tmp_path / "forged.der"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return (tmp_path / "forged.der").read_bytes()


def test_signer_without_the_timestamping_eku_is_refused_by_both(local_tsa, tmp_path):
    note = _note()
    token = tsa.timestamp(local_tsa.url, note, _roots(local_tsa))
    forged = _cms_token(local_tsa, tmp_path, token.der, "noeku")
    with pytest.raises(TimestampInvalid, match="missing_eku"):
        tsa.verify_token(forged, hashlib.sha256(note).digest(), _roots(local_tsa))
    assert not _openssl_verifies(local_tsa, tmp_path, forged, note)


def test_token_without_ess_binding_is_refused_by_both(local_tsa, tmp_path):
    note = _note()
    token = tsa.timestamp(local_tsa.url, note, _roots(local_tsa))
    resigned = _cms_token(local_tsa, tmp_path, token.der, "tsa")  # right key, no ESSCertIDv2
    with pytest.raises(TimestampInvalid, match="bad_cert_binding"):
        tsa.verify_token(resigned, hashlib.sha256(note).digest(), _roots(local_tsa))
    assert not _openssl_verifies(local_tsa, tmp_path, resigned, note)


def test_sha1_ess_cert_id_is_refused_unless_allowed(local_tsa, tmp_path):
    note = _note()
    request, response = _ask(local_tsa, note, url=local_tsa.sha1_url)
    with pytest.raises(TimestampInvalid, match="bad_cert_binding"):
        tsa.verify_response(response, request, _roots(local_tsa))
    token = tsa.verify_response(response, request, _roots(local_tsa), allow_sha1_cert_id=True)
    assert _openssl_verifies(local_tsa, tmp_path, token.der, note)


def test_tsa_outage_is_unavailable_not_invalid(local_tsa):
    note = _note()
    with pytest.raises(TsaUnavailable, match="HTTP 503"):
        tsa.timestamp(local_tsa.down_url, note, _roots(local_tsa))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    with pytest.raises(TsaUnavailable, match="could not be reached"):
        tsa.timestamp(closed, note, _roots(local_tsa), timeout=2)
    with pytest.raises(TimestampInvalid, match="malformed"):
        tsa.timestamp(local_tsa.garbage_url, note, _roots(local_tsa))


def test_request_arguments_are_checked():
    with pytest.raises(ValueError, match="32 bytes"):
        tsa.build_request(b"short")
    with pytest.raises(ValueError, match="not one of"):
        tsa.build_request(bytes(20), hash_algorithm="sha1")
    first, second = tsa.build_request(bytes(32)), tsa.build_request(bytes(32))
    assert first.nonce != second.nonce and first.nonce > 0
