"""Cluster-wide identities: one token-signing key and one operator for every node.

On one server, ``server/auth.py`` signs identity tokens with the server's own Ed25519 key
and ``server/rights.py`` makes the server's own operator. In a cluster that would make a
token minted on node A worthless on node B, and a database's owner (an identity in the
catalogue) unable to prove who they are anywhere but where they got their token. So the
nodes share both, through one key of the JetStream KV bucket ``COSMICTRON_AUTH`` (R3):

- the first node to start offers its own key and operator token with a KV *create* (a
  compare-and-set on "no such key"): exactly one offer wins, whatever the race;
- every node (the winner too) then uses what the bucket holds: it writes that key and
  token over its local ``<data-dir>/server/`` files before the server loads them, so the
  rest of the server is unchanged and a node restarted without NATS still knows them.

Identities themselves are random 32-byte values (not tied to a key), so a database's owner
and the identities row-level security compares are the same on every node once every node
checks tokens with the same key. Grants (the right to deploy) are one document in the
same bucket (``grants``): changed by compare-and-set from any node, watched by every node.

Trusting NATS: whoever can read ``$KV.COSMICTRON_AUTH`` can mint a token for any identity,
the operator's included. Run NATS with TLS and accounts or user permissions that give the
Cosmictron nodes, and only them, the JetStream API and this bucket (docs/design/cluster.md,
"Identities and keys").
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmictron.cluster.connection import NatsConnection, kv_bucket
from cosmictron.durability.files import write_file_durably
from cosmictron.errors import ClusterUnavailable

logger = logging.getLogger(__name__)

AUTH_BUCKET = "COSMICTRON_AUTH"
"""The KV bucket of the cluster's shared secrets."""

AUTHORITY_KEY = "authority"
"""Its one key: the token-signing key (PKCS8 PEM) and the operator's token, together, so
one compare-and-set decides both."""

OFFER_TIMEOUT_S = 20.0
"""How long a node retries unanswered requests while it offers its key."""

KEY_FILE = "jwt_ed25519.pem"
PUBLIC_KEY_FILE = "jwt_ed25519.pub.pem"
OPERATOR_TOKEN_FILE = "operator.token"
"""The file names ``server/auth.py`` and ``server/rights.py`` keep them under."""


@dataclass(frozen=True)
class ClusterAuthority:
    """The cluster's token-signing key (PEM) and its operator's token."""

    key_pem: bytes
    operator_token: str


async def _bucket(connection: NatsConnection, replicas: int) -> Any:
    return await kv_bucket(connection.js, AUTH_BUCKET, replicas)


async def _offer(connection: NatsConnection, offer: ClusterAuthority, replicas: int) -> bytes:
    from nats.js.errors import KeyNotFoundError, NoStreamResponseError, ServiceUnavailableError

    deadline = time.monotonic() + OFFER_TIMEOUT_S
    while True:
        try:
            return await _offer_once(connection, offer, replicas)
        except (TimeoutError, ServiceUnavailableError, NoStreamResponseError, KeyNotFoundError):
            # A JetStream request can go unanswered while a meta leader settles (a fresh
            # cluster, nodes racing to create the bucket), and a bucket just created has
            # no stream leader for a moment ("no responders"): asked again, it answers.
            # A retried create that had succeeded finds its own offer: the same answer.
            # A create refused because another node's offer is in flight can read the key
            # before that offer is stored (not found): read again, it is there.
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def _offer_once(connection: NatsConnection, offer: ClusterAuthority, replicas: int) -> bytes:
    from nats.js.errors import KeyWrongLastSequenceError

    kv = await _bucket(connection, replicas)
    value = json.dumps(
        {"key_pem": offer.key_pem.decode(), "operator_token": offer.operator_token}
    ).encode()
    try:
        await kv.create(AUTHORITY_KEY, value)
    except KeyWrongLastSequenceError:
        pass  # another node's offer won: use it
    entry = await kv.get(AUTHORITY_KEY)
    return bytes(entry.value or b"")


def share_authority(
    connection: NatsConnection, offer: ClusterAuthority, *, replicas: int = 3
) -> ClusterAuthority:
    """Offer this node's key and operator token; the cluster's (the first offer made).

    Raises:
        ClusterUnavailable: JetStream did not answer, or the bucket holds something else.
    """
    try:
        raw = connection.run(_offer(connection, offer, replicas), OFFER_TIMEOUT_S + 10.0)
        doc = json.loads(raw)
        return ClusterAuthority(doc["key_pem"].encode(), str(doc["operator_token"]))
    except ClusterUnavailable:
        raise
    except Exception as exc:
        raise ClusterUnavailable(
            f"could not read or offer the cluster's token key in KV {AUTH_BUCKET!r} ({exc!r})"
        ) from exc


def adopt_authority(
    connection: NatsConnection, server_dir: Path, *, replicas: int = 3
) -> ClusterAuthority:
    """Make ``server_dir`` hold the cluster's token key and operator token (see the module doc).

    Call it after the server made its own (``TokenAuthority.load_or_create`` and
    ``Rights.load_or_create``) and before it loads them for good: the local ones are this
    node's offer; when another node's offer won, they are replaced.
    """
    local = ClusterAuthority(
        (server_dir / KEY_FILE).read_bytes(),
        (server_dir / OPERATOR_TOKEN_FILE).read_text().strip(),
    )
    shared = share_authority(connection, local, replicas=replicas)
    if shared != local:
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(shared.key_pem, password=None)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        old_mask = os.umask(0o077)  # at start, before any module runs: secrets are 0600
        try:
            write_file_durably(str(server_dir / KEY_FILE), [shared.key_pem])
            write_file_durably(str(server_dir / PUBLIC_KEY_FILE), [public])
            token = (shared.operator_token + "\n").encode()
            write_file_durably(str(server_dir / OPERATOR_TOKEN_FILE), [token])
        finally:
            os.umask(old_mask)
    return shared


GRANTS_KEY = "grants"
"""The cluster's grants (the right to deploy), one JSON document for every node."""

Grants = dict[str, list[str]]
"""A right's name -> the identities (hex) granted it."""


async def _grants_entry(kv: Any) -> tuple[Grants | None, int]:
    from nats.js.errors import KeyDeletedError, KeyNotFoundError

    try:
        entry = await kv.get(GRANTS_KEY)
    except (KeyNotFoundError, KeyDeletedError):
        return None, 0
    return json.loads(entry.value or b"{}"), int(entry.revision or 0)


def share_grants(connection: NatsConnection, local: Grants, *, replicas: int = 3) -> Grants:
    """The cluster's grants: the bucket's when it has them, else ``local`` (offered with a
    create: the first node's grants become the cluster's; later nodes' local files do
    not count, or a node that was down would bring back a revoked grant)."""

    async def offer() -> Grants:
        from nats.js.errors import KeyWrongLastSequenceError

        kv = await _bucket(connection, replicas)
        found, _ = await _grants_entry(kv)
        if found is not None:
            return found
        try:
            await kv.create(GRANTS_KEY, json.dumps(local, sort_keys=True).encode())
        except KeyWrongLastSequenceError:
            pass
        found, _ = await _grants_entry(kv)
        return found if found is not None else local

    return connection.run(offer(), OFFER_TIMEOUT_S + 10.0)


def change_grant(
    connection: NatsConnection, right: str, identity: str, held: bool, *, replicas: int = 3
) -> Grants:
    """Grant (``held``) or revoke ``right`` for ``identity`` cluster-wide, by
    compare-and-set (a concurrent change on another node is read again and kept); the
    cluster's grants after it."""

    async def change() -> Grants:
        from nats.js.errors import KeyWrongLastSequenceError

        kv = await _bucket(connection, replicas)
        while True:
            found, revision = await _grants_entry(kv)
            grants = {name: list(ids) for name, ids in (found or {}).items()}
            members = set(grants.get(right, []))
            members = members | {identity} if held else members - {identity}
            grants[right] = sorted(members)
            value = json.dumps(grants, sort_keys=True).encode()
            try:
                if revision == 0:
                    await kv.create(GRANTS_KEY, value)
                else:
                    await kv.update(GRANTS_KEY, value, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another node changed them meanwhile: apply ours to theirs
            return grants

    return connection.run(change(), OFFER_TIMEOUT_S + 10.0)


def watch_grants(
    connection: NatsConnection, on_change: Callable[[Grants], None], *, replicas: int = 3
) -> None:
    """Call ``on_change`` (on the NATS thread) with the cluster's grants whenever any node
    changes them, until the connection closes."""

    async def watch() -> None:
        kv = await _bucket(connection, replicas)
        watcher = await kv.watch(GRANTS_KEY)
        async for entry in watcher:
            if entry is None or not entry.value:
                continue
            try:
                on_change(json.loads(entry.value))
            except Exception:  # a bad document: keep the grants held now
                logger.exception("cluster: ignoring unreadable grants in %s", AUTH_BUCKET)

    connection.submit(watch())
