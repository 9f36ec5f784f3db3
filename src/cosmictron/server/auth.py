"""Identities and their tokens: who is calling.

``POST /v1/identity`` makes a random ``Identity`` and a token for it: a JWT (RFC 7519)
signed with the server's Ed25519 key (``EdDSA``, PyJWT), with the identity in ``sub``.
Ed25519 rather than a shared HMAC secret so that anyone holding the public key (written
next to it) can check a token without being able to mint one, which the audit and
replication work will rely on. The key lives in ``<data-dir>/server/``, created on first
start with mode 0600, so tokens stay valid across restarts.

A request carries its token as ``Authorization: Bearer <token>`` or ``?token=``
(browsers cannot set headers on a WebSocket). No token means anonymous: such callers may
call reducers and read public tables, as ``anonymous_identity`` (all zeros). A token
that is malformed, not ours, or expired is ``Unauthenticated`` (401) with the reason.

Verifying an Ed25519 signature costs about 200 µs of Python-held CPU, more than the fsync
of the call it authorises (docs/benchmarks.md, "Where a server call's time goes"), and an
HTTP client sends the same token with every request. So ``verify`` keeps the tokens it has
verified (``limits.verified_tokens_cached_max``, least recently used out first) with their
identity and expiry: a cached token is accepted without a signature check only while it
has not expired, exactly as a fresh check would decide. Nothing else can change a
verdict: the key is fixed for the authority's life and tokens are not revocable. A
WebSocket verifies its token once, when it connects.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cosmictron import limits
from cosmictron.durability.files import ensure_directory, write_file_durably
from cosmictron.errors import Unauthenticated
from cosmictron.values import Identity

ISSUER = "cosmictron"
ALGORITHM = "EdDSA"
ANONYMOUS = Identity.zero()
"""The identity of a caller without a token; it owns nothing."""


class TokenAuthority:
    """Issues and verifies this server's identity tokens."""

    def __init__(self, key: Ed25519PrivateKey, lifetime_s: int | None = None) -> None:
        self._key = key
        self._public = key.public_key()
        self.lifetime_s = lifetime_s
        self.cached_max = limits.verified_tokens_cached_max
        self._verified: OrderedDict[str, tuple[Identity, float | None]] = OrderedDict()
        self._verified_lock = threading.Lock()

    @classmethod
    def load_or_create(cls, directory: Path, lifetime_s: int | None = None) -> TokenAuthority:
        """The key in ``directory/jwt_ed25519.pem``, made (0600, fsynced) if missing."""
        path = directory / "jwt_ed25519.pem"
        if path.exists():
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)  # loosened by hand: only the server's user may read it
            # read_bytes closes the file: no descriptor to it is left for module code
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise Unauthenticated(f"{path} does not hold an Ed25519 key")
            return cls(loaded, lifetime_s)
        ensure_directory(str(directory))
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        old_mask = os.umask(0o077)
        try:
            write_file_durably(str(path), [pem])
            public = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            write_file_durably(str(directory / "jwt_ed25519.pub.pem"), [public])
        finally:
            os.umask(old_mask)
        return cls(key, lifetime_s)

    def issue(self, identity: Identity) -> str:
        """A token proving ``identity``."""
        now = int(time.time())
        claims: dict[str, object] = {"sub": identity.hex(), "iss": ISSUER, "iat": now}
        if self.lifetime_s is not None:
            claims["exp"] = now + self.lifetime_s
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> Identity:
        """The identity a token proves; a token verified before and not yet expired is
        answered from the cache (module docstring).

        Raises:
            Unauthenticated: malformed, signed by another key, expired, or without ``sub``.
        """
        with self._verified_lock:
            cached = self._verified.get(token)
            if cached is not None:
                identity, expires = cached
                if expires is None or time.time() < expires:
                    self._verified.move_to_end(token)
                    return identity
                del self._verified[token]  # expired: the full check says why
        identity, expires = self._check(token)
        if self.cached_max > 0:
            with self._verified_lock:
                self._verified[token] = (identity, expires)
                while len(self._verified) > self.cached_max:
                    self._verified.popitem(last=False)
        return identity

    @property
    def cached_tokens(self) -> int:
        """Tokens held verified (for tests and ``/metrics``)."""
        return len(self._verified)

    def _check(self, token: str) -> tuple[Identity, float | None]:
        """Verify the signature and claims: the identity and the expiry (or None)."""
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "iat"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(
                "the token has expired; get a new one (POST /v1/identity)"
            ) from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token was not signed by this server") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        try:
            identity = Identity.from_hex(str(claims["sub"]))
        except ValueError:
            raise Unauthenticated("the token's subject is not an identity") from None
        expires = claims.get("exp")
        return identity, float(expires) if isinstance(expires, int | float) else None
