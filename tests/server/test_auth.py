"""Tokens: what is accepted and every way one is refused, with its reason."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from cosmictron import limits
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


def test_a_verified_token_is_remembered_until_it_expires(tmp_path: Path) -> None:
    """The cache answers a repeated token without the signature check, but never past its
    ``exp``: a token that expires while cached is refused as a fresh check would."""
    authority = TokenAuthority.load_or_create(tmp_path, lifetime_s=2)
    me = Identity.random()
    token = authority.issue(me)
    assert authority.verify(token) == me
    assert authority.cached_tokens == 1
    assert authority.verify(token) == me  # from the cache
    assert authority.cached_tokens == 1
    time.sleep(3.1)  # exp is a whole second: past it for sure
    with pytest.raises(Unauthenticated, match="expired"):
        authority.verify(token)
    assert authority.cached_tokens == 0


def test_the_token_cache_keeps_at_most_its_limit(tmp_path: Path) -> None:
    """Crossing ``limits.verified_tokens_cached_max`` drops the least recently used token;
    a dropped token is verified afresh (and still accepted)."""
    authority = TokenAuthority.load_or_create(tmp_path)
    authority.cached_max = 3
    people = [Identity.random() for _ in range(5)]
    tokens = [authority.issue(person) for person in people]
    for token in tokens:
        authority.verify(token)
    assert authority.cached_tokens == 3
    assert list(authority._verified) == tokens[2:]
    assert authority.verify(tokens[0]) == people[0]  # dropped, checked again
    assert list(authority._verified) == [*tokens[3:], tokens[0]]
    forged = tokens[1][:-4] + ("AAAA" if not tokens[1].endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthenticated):
        authority.verify(forged)  # a different string: never a cache hit
    assert limits.verified_tokens_cached_max == 4096


def test_a_token_cache_of_zero_keeps_nothing(tmp_path: Path) -> None:
    authority = TokenAuthority.load_or_create(tmp_path)
    authority.cached_max = 0
    me = Identity.random()
    assert authority.verify(authority.issue(me)) == me
    assert authority.cached_tokens == 0
