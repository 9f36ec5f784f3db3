"""Tokens: what is accepted and every way one is refused, with its reason."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from cosmictron.errors import Unauthenticated
from cosmictron.server.auth import TokenAuthority
from cosmictron.values import Identity


def test_a_token_proves_its_identity_across_a_reload(tmp_path: Path) -> None:
    authority = TokenAuthority.load_or_create(tmp_path)
    me = Identity.random()
    token = authority.issue(me)
    assert TokenAuthority.load_or_create(tmp_path).verify(token) == me
    assert (tmp_path / "jwt_ed25519.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "jwt_ed25519.pub.pem").exists()


def test_refusals_name_the_reason(tmp_path: Path) -> None:
    authority = TokenAuthority.load_or_create(tmp_path / "ours")
    other = TokenAuthority.load_or_create(tmp_path / "theirs")
    me = Identity.random()
    with pytest.raises(Unauthenticated, match="not signed by this server"):
        authority.verify(other.issue(me))
    with pytest.raises(Unauthenticated, match="expired"):
        authority.verify(TokenAuthority.load_or_create(tmp_path / "ours", -10).issue(me))
    with pytest.raises(Unauthenticated, match="not valid"):
        authority.verify("not-a-token")
    unsigned = jwt.encode(
        {"sub": me.hex(), "iss": "cosmictron", "iat": 1}, key=None, algorithm="none"
    )
    with pytest.raises(Unauthenticated, match="not valid"):
        authority.verify(unsigned)  # alg=none is never accepted
    key = authority._key
    no_identity = jwt.encode({"sub": "zz", "iss": "cosmictron", "iat": 1}, key, algorithm="EdDSA")
    with pytest.raises(Unauthenticated, match="subject is not an identity"):
        authority.verify(no_identity)
    no_subject = jwt.encode({"iss": "cosmictron", "iat": 1}, key, algorithm="EdDSA")
    with pytest.raises(Unauthenticated, match="not valid"):
        authority.verify(no_subject)
