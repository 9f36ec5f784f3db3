"""The ledger's signing keys over HTTP: list, rotate, revoke (owner or operator only).

- ``GET /v1/database/{name}/audit/keys``: every key the log has counted, with the range of
  sequence numbers it signs for (``first``, ``last``: null while it is active) and which
  one the database signs with now. A database whose ledger is off lists none.
- ``POST /v1/database/{name}/audit/keys/rotate``: ``Database.rotate_signing_key``: one
  rotation record signed by the old and the new key; replies with the new public key.
- ``DELETE /v1/database/{name}/audit/keys/{key}``: ``Database.revoke_signing_key``; ``key``
  is a fingerprint (64 hex digits, or a prefix of at least 8 that names one key) as
  ``GET .../audit/keys`` lists it.

Rotation and revocation are log records, so they are as durable as a commit when the
reply comes. Who may: the database's owner and the server's operator (keys are the
operator's business as much as the owner's: an operator rotates a key that leaked); any
other caller gets 403. Docs: docs/guide/ledger.md, "Keys"; docs/reference/http.md.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cosmictron.errors import InvalidRequest, NotFound, PermissionDenied
from cosmictron.server.audit import LedgerOff
from cosmictron.server.registry import HostedDatabase
from cosmictron.server.replies import json_response
from cosmictron.server.routes import RIGHTS, caller_of, hosted

FINGERPRINT_PREFIX_MIN = 8
"""The fewest hex digits of a fingerprint that ``DELETE .../audit/keys/{key}`` accepts."""


def _require_keeper(request: web.Request, database: HostedDatabase, action: str) -> None:
    caller = caller_of(request)
    if caller != database.db.owner and caller != request.app[RIGHTS].operator:
        raise PermissionDenied(
            f"only the owner of database {database.name!r} or the server's operator may {action}"
        )


def _keys(database: HostedDatabase) -> dict[str, Any]:
    core = database.db.core
    ledger = core.persistence.ledger
    if ledger is None or ledger.tree is None:
        return {"database": database.name, "signing": core.durability.signing, "keys": []}
    with core.lock:
        current = ledger.key.fingerprint if ledger.key is not None else None
        keys = [
            {
                "fingerprint": r.key.fingerprint.hex(),
                "key": r.key.to_text(),
                "first": r.first,
                "last": r.last,
                "ended_at": r.ended_at,
                "active": r.last is None,
                "current": r.key.fingerprint == current,
            }
            for r in ledger.ring.ranges()
        ]
    return {"database": database.name, "signing": core.durability.signing, "keys": keys}


def _check_ledger(database: HostedDatabase) -> None:
    ledger = database.db.core.persistence.ledger
    if ledger is None or ledger.tree is None:
        raise LedgerOff(
            f"database {database.name!r} keeps no ledger, so it has no signing key; start it "
            'with signing = "checkpoint" or "event" (COSMICTRON_SIGNING)'
        )


def _rotate(database: HostedDatabase) -> dict[str, Any]:
    _check_ledger(database)
    db = database.db
    before = _keys(database)["keys"]
    old = next((k for k in before if k["current"]), None)
    new = db.rotate_signing_key()
    after = {k["fingerprint"]: k for k in _keys(database)["keys"]}
    return {
        "database": database.name,
        "rotated": True,
        "old": old["key"] if old else None,
        "key": new.to_text(),
        "fingerprint": new.fingerprint.hex(),
        "seq": after[new.fingerprint.hex()]["first"],
    }


def _find(database: HostedDatabase, text: str) -> bytes:
    lowered = text.lower()
    if len(lowered) < FINGERPRINT_PREFIX_MIN or any(c not in "0123456789abcdef" for c in lowered):
        raise InvalidRequest(
            f"{text!r} is not a key fingerprint: give its hex digits (at least "
            f"{FINGERPRINT_PREFIX_MIN}) as GET /v1/database/{database.name}/audit/keys lists them"
        )
    matches = [k for k in _keys(database)["keys"] if k["fingerprint"].startswith(lowered)]
    if not matches:
        raise NotFound(f"database {database.name!r} has no signing key {text}")
    if len(matches) > 1:
        raise InvalidRequest(f"{text!r} names {len(matches)} keys; give more of the fingerprint")
    return bytes.fromhex(matches[0]["fingerprint"])


def _revoke(database: HostedDatabase, text: str) -> dict[str, Any]:
    _check_ledger(database)
    fingerprint = _find(database, text)
    revoked = database.db.revoke_signing_key(fingerprint)
    after = {k["fingerprint"]: k for k in _keys(database)["keys"]}
    return {
        "database": database.name,
        "revoked": True,
        "key": revoked.to_text(),
        "fingerprint": revoked.fingerprint.hex(),
        "seq": after[revoked.fingerprint.hex()]["ended_at"],
    }


async def list_keys(request: web.Request) -> web.Response:
    """The log's signing keys and their ranges (owner or operator)."""
    database = hosted(request)
    _require_keeper(request, database, "list its signing keys")
    return json_response(await database.run(_keys, database))


async def rotate_key(request: web.Request) -> web.Response:
    """Rotate the signing key (owner or operator)."""
    database = hosted(request)
    _require_keeper(request, database, "rotate its signing key")
    return json_response(await database.run(_rotate, database))


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a signing key by fingerprint (owner or operator)."""
    database = hosted(request)
    _require_keeper(request, database, "revoke its signing keys")
    return json_response(await database.run(_revoke, database, request.match_info["key"]))
