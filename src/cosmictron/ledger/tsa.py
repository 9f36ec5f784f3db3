"""RFC 3161 timestamps: ask a TSA to stamp a checkpoint's hash, and check what comes back.

The request (:func:`build_request`) carries the SHA-256 of the bytes to anchor (a signed
checkpoint note), a fresh 64-bit nonce, ``certReq`` true (the TSA must include its
certificate, so the token verifies on its own later) and, when configured, the policy
we require. :func:`request_timestamp` posts it over HTTP (``application/timestamp-query``).

A response is trusted only after every check, in this order, each failure a
:class:`~cosmictron.ledger.errors.TimestampInvalid` naming its ``reason``:

1. ``malformed``: it parses as ``TimeStampResp`` / CMS ``SignedData`` with one signer,
   whose content type is ``id-ct-TSTInfo``; ``status``: the TSA granted it.
2. ``imprint_mismatch``: the token's message imprint is our hash, with our algorithm;
   ``nonce_mismatch``: its nonce is ours (a replayed token fails here);
   ``policy_mismatch``: its policy is the configured one.
3. ``unsupported_algorithm``: the digest is SHA-256/384/512 (never SHA-1) and the
   signature ECDSA, RSA (PKCS#1 v1.5 or PSS) or Ed25519; ``signer_not_found``: the
   signer's certificate is in the token; ``content_digest``: the signed
   ``messageDigest`` attribute is the hash of the TSTInfo and ``contentType`` is TSTInfo;
   ``bad_signature``: the CMS signature over the signed attributes verifies.
4. ``missing_eku``: the signer's certificate has exactly one EKU, ``id-kp-timeStamping``,
   marked critical (RFC 3161 §2.3).
5. ``bad_cert_binding``: the signed ``signingCertificateV2`` (ESSCertIDv2, RFC 5816)
   names the signer's certificate by hash (and issuer and serial when present); the
   SHA-1 ``ESSCertID`` is accepted only with ``allow_sha1_cert_id``.
6. ``untrusted_chain``: the certificate chains to one of the configured roots and was
   valid at the token's ``genTime`` (``cryptography``'s X.509 path validation, with the
   Web PKI rules for the CAs and the checks above for the TSA's own certificate).

The verifier reads DER with ``asn1crypto`` and does every cryptographic operation with
``cryptography``; no unmaintained RFC 3161 package is involved. ``openssl ts -verify``
accepts every token this accepts (the tests check both).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Sequence

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from cosmictron.ledger.errors import TimestampInvalid, TsaUnavailable

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"

_DIGESTS: dict[str, tuple[type[hashes.HashAlgorithm], str]] = {
    "sha256": (hashes.SHA256, "sha256"),
    "sha384": (hashes.SHA384, "sha384"),
    "sha512": (hashes.SHA512, "sha512"),
}


class _TimeStampResp(core.Sequence):
    """RFC 3161 ``TimeStampResp``: asn1crypto's marks the token required, but a TSA that
    refuses (status ``rejection``) sends none, and we want to read that status."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclasses.dataclass(frozen=True)
class TimestampRequest:
    """A ``TimeStampReq`` and what its reply must echo (the imprint and the nonce)."""

    der: bytes
    digest: bytes
    nonce: int
    hash_algorithm: str = "sha256"
    policy: str | None = None


@dataclasses.dataclass(frozen=True)
class TimestampToken:
    """A checked token: the CMS ``ContentInfo`` DER (what is stored) and what it says."""

    der: bytes
    gen_time: datetime.datetime
    serial_number: int
    policy: str
    digest: bytes
    hash_algorithm: str
    nonce: int | None
    signer: x509.Certificate


def build_request(
    digest: bytes,
    *,
    hash_algorithm: str = "sha256",
    policy: str | None = None,
    nonce: int | None = None,
) -> TimestampRequest:
    """A request for the timestamp of ``digest`` with a fresh nonce and ``certReq`` set."""
    if hash_algorithm not in _DIGESTS:
        raise ValueError(f"hash algorithm {hash_algorithm!r} is not one of {sorted(_DIGESTS)}")
    if len(digest) != _DIGESTS[hash_algorithm][0].digest_size:
        raise ValueError(
            f"a {hash_algorithm} digest has {_DIGESTS[hash_algorithm][0].digest_size} bytes"
        )
    nonce = int.from_bytes(os.urandom(8), "big") | 1 if nonce is None else nonce
    request = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": hash_algorithm},
            "hashed_message": digest,
        },
        "nonce": nonce,
        "cert_req": True,
    }
    if policy is not None:
        request["req_policy"] = policy
    der = tsp.TimeStampReq(request).dump()
    return TimestampRequest(der, digest, nonce, hash_algorithm, policy)


def request_timestamp(url: str, request: TimestampRequest, *, timeout: float = 10.0) -> bytes:
    """POST ``request`` to the TSA at ``url``; return the response body (unchecked).

    Raises:
        TsaUnavailable: the TSA could not be reached, or answered with an HTTP error or a
            content type other than ``application/timestamp-reply``.
    """
    http_request = urllib.request.Request(
        url, data=request.der, method="POST", headers={"Content-Type": QUERY_TYPE}
    )
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as reply:
            content_type = reply.headers.get("Content-Type", "")
            body: bytes = reply.read()
    except urllib.error.HTTPError as e:
        raise TsaUnavailable(f"TSA {url} answered HTTP {e.code} {e.reason}") from None
    except TimeoutError:
        raise TsaUnavailable(f"TSA {url} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise TsaUnavailable(f"TSA {url} did not answer within {timeout:g} s") from None
        raise TsaUnavailable(f"TSA {url} could not be reached: {e}") from None
    except OSError as e:
        raise TsaUnavailable(f"TSA {url} could not be reached: {e}") from None
    if content_type.split(";")[0].strip() != REPLY_TYPE:
        raise TsaUnavailable(f"TSA {url} answered {content_type!r}, not {REPLY_TYPE}")
    return body


def verify_response(
    response: bytes,
    request: TimestampRequest,
    trust_roots: Sequence[x509.Certificate],
    *,
    policy: str | None = None,
    allow_sha1_cert_id: bool = False,
) -> TimestampToken:
    """Check a ``TimeStampResp`` against its request; return the checked token.

    ``policy`` defaults to the request's; when neither is set, any policy is accepted.
    """
    try:
        resp = _TimeStampResp.load(response)
        status = resp["status"]["status"].native
        text = resp["status"]["status_string"].native
    except (ValueError, TypeError, KeyError) as e:
        raise TimestampInvalid("malformed", f"not a TimeStampResp: {e}") from None
    if status not in ("granted", "granted_with_mods"):
        raise TimestampInvalid("status", f"the TSA answered {status}: {text}")
    try:
        token = resp["time_stamp_token"]
        if token.native is None:
            raise ValueError("no token")
    except (ValueError, TypeError, KeyError):
        raise TimestampInvalid("malformed", "a granted response without a token") from None
    return verify_token(
        token.dump(),
        request.digest,
        trust_roots,
        hash_algorithm=request.hash_algorithm,
        nonce=request.nonce,
        policy=policy if policy is not None else request.policy,
        allow_sha1_cert_id=allow_sha1_cert_id,
    )


def verify_token(
    token: bytes,
    digest: bytes,
    trust_roots: Sequence[x509.Certificate] | None,
    *,
    hash_algorithm: str = "sha256",
    nonce: int | None = None,
    policy: str | None = None,
    allow_sha1_cert_id: bool = False,
) -> TimestampToken:
    """Check a stored token (CMS ``ContentInfo``) for ``digest``; see the module docstring.

    ``nonce`` is checked when given (fresh responses); a stored token is checked later
    without it: the nonce only proves freshness at the time of the request.
    ``trust_roots`` None skips only step 6, the chain to a root (an auditor without the
    TSA's root still checks the rest; ``verify`` says the chain went unchecked); an
    empty sequence is ``untrusted_chain``.
    """
    signed_data, tst_bytes, tst = _parse(token)
    try:
        _check_tst(tst, digest, hash_algorithm, nonce, policy)
        signer_info = signed_data["signer_infos"][0]
        certificates = _certificates(signed_data)
        signer = _find_signer(signer_info, certificates)
        _check_signature(signer_info, signer, tst_bytes)
        _check_eku(signer)
        _check_binding(signer_info, signer, allow_sha1_cert_id)
        gen_time = tst["gen_time"].native
        if trust_roots is not None:
            _check_chain(signer, certificates, trust_roots, gen_time)
    except TimestampInvalid:
        raise
    except Exception as e:  # the token is untrusted input: see below
        # asn1crypto and cryptography parse parts lazily (a certificate's version, key and
        # extensions when first read): a damaged byte deep in the token surfaces here, not
        # in ``_parse``, as whichever error that parser raises (ValueError, InvalidVersion,
        # UnsupportedAlgorithm, DuplicateExtension...). Each means: not a valid token.
        raise TimestampInvalid("malformed", f"a part of the token does not parse: {e!r}") from None
    return TimestampToken(
        der=token,
        gen_time=gen_time,
        serial_number=tst["serial_number"].native,
        policy=tst["policy"].native,
        digest=digest,
        hash_algorithm=hash_algorithm,
        nonce=tst["nonce"].native,
        signer=x509.load_der_x509_certificate(signer.dump()),
    )


def _parse(token: bytes) -> tuple[cms.SignedData, bytes, tsp.TSTInfo]:
    try:
        info = cms.ContentInfo.load(token)
        if info["content_type"].native != "signed_data":
            raise ValueError(f"content type {info['content_type'].native}")
        signed_data = info["content"]
        encap = signed_data["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise ValueError(f"encapsulated content is {encap['content_type'].native}")
        tst_bytes = bytes(encap["content"])
        tst = tsp.TSTInfo.load(tst_bytes)
        tst.native  # noqa: B018 - parse every field now, not lazily later
        if len(signed_data["signer_infos"]) != 1:
            raise ValueError(f"{len(signed_data['signer_infos'])} signers, not 1")
    except (ValueError, TypeError, KeyError) as e:
        raise TimestampInvalid("malformed", f"not a timestamp token: {e}") from None
    return signed_data, tst_bytes, tst


def _check_tst(
    tst: tsp.TSTInfo, digest: bytes, hash_algorithm: str, nonce: int | None, policy: str | None
) -> None:
    imprint = tst["message_imprint"]
    if imprint["hash_algorithm"]["algorithm"].native != hash_algorithm:
        raise TimestampInvalid(
            "imprint_mismatch",
            f"the token stamps a {imprint['hash_algorithm']['algorithm'].native} hash, "
            f"not {hash_algorithm}",
        )
    if imprint["hashed_message"].native != digest:
        raise TimestampInvalid("imprint_mismatch", "the token stamps another hash")
    if nonce is not None and tst["nonce"].native != nonce:
        raise TimestampInvalid("nonce_mismatch", "the token's nonce is not the request's")
    if policy is not None and tst["policy"].native != policy:
        raise TimestampInvalid(
            "policy_mismatch", f"the token's policy is {tst['policy'].native}, not {policy}"
        )


def _certificates(signed_data: cms.SignedData) -> list[asn1_x509.Certificate]:
    found = []
    for choice in signed_data["certificates"] or []:
        if choice.name == "certificate":
            found.append(choice.chosen)
    return found


def _find_signer(
    signer_info: cms.SignerInfo, certificates: list[asn1_x509.Certificate]
) -> asn1_x509.Certificate:
    sid = signer_info["sid"]
    for cert in certificates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                cert.issuer == wanted["issuer"]
                and cert.serial_number == wanted["serial_number"].native
            ):
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    raise TimestampInvalid(
        "signer_not_found", "the signer's certificate is not in the token (certReq was set)"
    )


def _digest_name(algorithm: algos.DigestAlgorithm) -> str:
    name = algorithm["algorithm"].native
    if name not in _DIGESTS:
        raise TimestampInvalid("unsupported_algorithm", f"digest {name} is not accepted")
    return name


def _check_signature(
    signer_info: cms.SignerInfo, signer: asn1_x509.Certificate, tst_bytes: bytes
) -> None:
    digest_name = _digest_name(signer_info["digest_algorithm"])
    hash_type = _DIGESTS[digest_name][0]
    signed_attrs = signer_info["signed_attrs"]
    if not signed_attrs:
        raise TimestampInvalid("content_digest", "the signer info has no signed attributes")
    attrs = {a["type"].native: a["values"] for a in signed_attrs}
    content_types = attrs.get("content_type")
    if content_types is None or [v.native for v in content_types] != ["tst_info"]:
        raise TimestampInvalid("content_digest", "the signed content type is not TSTInfo")
    digests = attrs.get("message_digest")
    expected = hashlib.new(digest_name, tst_bytes).digest()
    if digests is None or [v.native for v in digests] != [expected]:
        raise TimestampInvalid("content_digest", "the signed message digest is not the TSTInfo's")
    # The signature covers the DER of the attributes as a SET OF (tag 0x31), not [0].
    signed_bytes = b"\x31" + signed_attrs.dump()[1:]
    signature = signer_info["signature"].native
    algorithm = signer_info["signature_algorithm"]
    try:
        sig_algo = algorithm.signature_algo
    except ValueError as e:
        raise TimestampInvalid("unsupported_algorithm", str(e)) from None
    key = x509.load_der_x509_certificate(signer.dump()).public_key()
    try:
        if sig_algo == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_bytes, ec.ECDSA(hash_type()))
        elif sig_algo == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_bytes, padding.PKCS1v15(), hash_type())
        elif sig_algo == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = algorithm["parameters"]
            pss_hash = _DIGESTS[_digest_name(params["hash_algorithm"])][0]
            key.verify(
                signature,
                signed_bytes,
                padding.PSS(padding.MGF1(pss_hash()), params["salt_length"].native),
                pss_hash(),
            )
        elif sig_algo == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed_bytes)
        else:
            raise TimestampInvalid(
                "unsupported_algorithm", f"signature {sig_algo} with a {type(key).__name__}"
            )
    except InvalidSignature:
        raise TimestampInvalid("bad_signature", "the TSA's signature does not verify") from None


def _check_eku(signer: asn1_x509.Certificate) -> None:
    cert = x509.load_der_x509_certificate(signer.dump())
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TimestampInvalid("missing_eku", "the TSA certificate has no EKU") from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampInvalid(
            "missing_eku", "the TSA certificate's EKU must be critical and only timeStamping"
        )


def _check_binding(
    signer_info: cms.SignerInfo, signer: asn1_x509.Certificate, allow_sha1: bool
) -> None:
    attrs = {a["type"].native: a["values"] for a in signer_info["signed_attrs"]}
    cert_der = signer.dump()
    if "signing_certificate_v2" in attrs:
        ids = attrs["signing_certificate_v2"][0]["certs"]
        first = ids[0]
        algorithm = first["hash_algorithm"]["algorithm"].native
        if algorithm not in _DIGESTS:
            raise TimestampInvalid("bad_cert_binding", f"ESSCertIDv2 uses {algorithm}")
        cert_hash = hashlib.new(algorithm, cert_der).digest()
    elif "signing_certificate" in attrs and allow_sha1:
        first = attrs["signing_certificate"][0]["certs"][0]
        cert_hash = hashlib.sha1(cert_der, usedforsecurity=False).digest()
    elif "signing_certificate" in attrs:
        raise TimestampInvalid(
            "bad_cert_binding", "only a SHA-1 ESSCertID binds the certificate (not accepted)"
        )
    else:
        raise TimestampInvalid("bad_cert_binding", "no signed ESSCertIDv2 names the certificate")
    if first["cert_hash"].native != cert_hash:
        raise TimestampInvalid("bad_cert_binding", "the signed certificate hash is another cert's")
    issuer_serial = first["issuer_serial"]
    if issuer_serial.native is not None:
        names = [n.chosen for n in issuer_serial["issuer"] if n.name == "directory_name"]
        if (
            issuer_serial["serial_number"].native != signer.serial_number
            or signer.issuer not in names
        ):
            raise TimestampInvalid("bad_cert_binding", "the signed issuer and serial differ")


def _check_chain(
    signer: asn1_x509.Certificate,
    certificates: list[asn1_x509.Certificate],
    trust_roots: Sequence[x509.Certificate],
    at: datetime.datetime,
) -> None:
    if not trust_roots:
        raise TimestampInvalid("untrusted_chain", "no TSA trust root is configured")
    leaf = x509.load_der_x509_certificate(signer.dump())
    others = [x509.load_der_x509_certificate(c.dump()) for c in certificates if c != signer]
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(trust_roots)))
        .time(at)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, others)
    except verification.VerificationError as e:
        raise TimestampInvalid(
            "untrusted_chain", f"the TSA certificate does not chain: {e}"
        ) from None


def timestamp(
    url: str,
    data: bytes,
    trust_roots: Sequence[x509.Certificate],
    *,
    policy: str | None = None,
    timeout: float = 10.0,
) -> TimestampToken:
    """Stamp ``data`` (e.g. a signed checkpoint note) at the TSA ``url``, fully checked.

    Raises:
        TsaUnavailable: the TSA could not be asked (retry later; never blocks commits).
        TimestampInvalid: it answered, and the answer does not check.
    """
    request = build_request(hashlib.sha256(data).digest(), policy=policy)
    return verify_response(request_timestamp(url, request, timeout=timeout), request, trust_roots)


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """The certificates in a PEM bundle (a configured TSA trust root file)."""
    return x509.load_pem_x509_certificates(pem)


__all__ = [
    "QUERY_TYPE",
    "REPLY_TYPE",
    "TimestampRequest",
    "TimestampToken",
    "build_request",
    "load_certificates",
    "request_timestamp",
    "timestamp",
    "verify_response",
    "verify_token",
]
