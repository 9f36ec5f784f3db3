"""The audit routes: what a verifier outside the server needs from the ledger.

- ``GET /v1/database/{name}/audit/checkpoint``: the latest signed checkpoint (C2SP note)
  and the log's public keys (C2SP verifier keys). Anyone may read it: it reveals sizes
  and hashes only, and a verifier needs nothing else but the public key.
- ``GET /v1/database/{name}/audit/inclusion?seq=N&size=M``: the Merkle inclusion proof
  of record ``seq`` in the tree of ``size`` records (default: the latest checkpoint's).
- ``GET /v1/database/{name}/audit/consistency?old=A&new=B``: the consistency proof
  between two tree sizes (``new`` defaults to the latest checkpoint's).
- ``GET /v1/database/{name}/audit/anchors?after=SEQ``: the RFC 3161 anchors (each
  checkpoint's timestamp tokens, base64 DER, with the note each stamps), oldest first,
  at most :data:`ANCHORS_PAGE` a reply (``more`` says whether to ask again with
  ``after`` = the last ``seq``), and the configured TSA trust root (PEM). Anyone may
  read it, like the checkpoint: tokens hold hashes and the TSA's certificate only.
- ``GET /v1/database/{name}/audit/verify`` (owner only: it reads the whole log):
  ``cosmictron.ledger.verify`` run on the server's copy, the result as JSON.

Proofs are served for sizes up to the latest checkpoint (the tree takes leaves in
batches, at checkpoints). Hashes are lowercase hex. A database whose ledger is off
answers 409 ``ledger_off``.
"""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web

from cosmictron.errors import CosmictronError, InvalidRequest
from cosmictron.ledger.anchor import read_side_anchors
from cosmictron.ledger.verifier import read_side_checkpoints, verify
from cosmictron.server.registry import HostedDatabase
from cosmictron.server.replies import json_response
from cosmictron.server.routes import caller_of, hosted, require_owner


class LedgerOff(CosmictronError):
    """The database's ledger is off (``signing = "off"``): no tree, no checkpoints."""

    code = "ledger_off"
    http_status = 409


def _ledger(database: HostedDatabase) -> Any:
    ledger = database.db.core.persistence.ledger
    if ledger is None or ledger.tree is None:
        raise LedgerOff(
            f"database {database.name!r} keeps no ledger; start it with signing = "
            '"checkpoint" or "event" (COSMICTRON_SIGNING)'
        )
    return ledger


def _int_query(request: web.Request, name: str, default: int | None) -> int:
    text = request.query.get(name)
    if text is None:
        if default is None:
            raise InvalidRequest(f"the query parameter {name} is required")
        return default
    if not text.isdigit():
        raise InvalidRequest(f"the query parameter {name} must be a whole number, not {text!r}")
    return int(text)


def _latest(database: HostedDatabase) -> dict[str, Any]:
    ledger = _ledger(database)
    with database.db.core.lock:
        keys = [r.key.to_text() for r in ledger.ring.ranges()]
        with ledger.side_files_steady():  # the ledger thread writes no entry meanwhile
            entries = read_side_checkpoints(os.fspath(database.db.path))
            pending = ledger.unwritten_side()[0]
        tree_size = ledger.tree.size
    latest = (entries + pending)[-1] if entries or pending else None
    return {"checkpoint": latest, "keys": keys, "tree_size": tree_size}


async def checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint and the public keys."""
    database = hosted(request)
    found = await database.run(_latest, database)
    latest = found["checkpoint"]
    return json_response(
        {
            "origin": _ledger(database).origin,
            "seq": latest["seq"] if latest else None,
            "size": latest["size"] if latest else 0,
            "note": latest["note"] if latest else None,
            "keys": found["keys"],
        }
    )


def _proof(database: HostedDatabase, kind: str, first: int, second: int | None) -> dict[str, Any]:
    ledger = _ledger(database)
    with database.db.core.lock:
        tree = ledger.tree
        size = tree.size if second is None else second
        if not 0 < size <= tree.size:
            raise InvalidRequest(
                f"tree size {size} is not served: proofs cover 1..{tree.size} records "
                "(up to the latest checkpoint)"
            )
        if kind == "inclusion":
            if not 1 <= first <= size:
                raise InvalidRequest(f"seq {first} is not in a tree of {size} records")
            proof = tree.inclusion_proof(first - 1, size)
            leaf = tree.leaf(first - 1)
            return {
                "seq": first,
                "size": size,
                "leaf_hash": leaf.hex(),
                "root": tree.root(size).hex(),
                "proof": [h.hex() for h in proof],
            }
        if not 0 < first <= size:
            raise InvalidRequest(f"old size {first} must be between 1 and {size}")
        proof = tree.consistency_proof(first, size)
        return {
            "old": first,
            "new": size,
            "old_root": tree.root(first).hex(),
            "new_root": tree.root(size).hex(),
            "proof": [h.hex() for h in proof],
        }


async def inclusion(request: web.Request) -> web.Response:
    """The inclusion proof of one record."""
    database = hosted(request)
    seq = _int_query(request, "seq", None)
    size = _int_query(request, "size", 0) or None
    return json_response(await database.run(_proof, database, "inclusion", seq, size))


async def consistency(request: web.Request) -> web.Response:
    """The consistency proof between two tree sizes."""
    database = hosted(request)
    old = _int_query(request, "old", None)
    new = _int_query(request, "new", 0) or None
    return json_response(await database.run(_proof, database, "consistency", old, new))


ANCHORS_PAGE = 1000
"""The most anchors one ``audit/anchors`` reply holds."""


def _trust_roots_pem(database: HostedDatabase) -> str | None:
    path = database.db.core.persistence.durability.anchor_trust_roots
    if path is None:
        return None
    try:
        with open(path, encoding="ascii") as file:
            return file.read()
    except (OSError, ValueError):
        return None


def _anchors(database: HostedDatabase, after: int) -> dict[str, Any]:
    ledger = _ledger(database)
    with database.db.core.lock, ledger.side_files_steady():
        entries = read_side_anchors(database.db.path)
        pending = ledger.unwritten_side()[1]
    found = [e for e in entries + pending if int(e["seq"]) > after]
    anchorer = database.db.core.persistence.anchorer
    lag_seconds, lag_records = anchorer.lag() if anchorer is not None else (0.0, 0)
    return {
        "origin": ledger.origin,
        "anchors": found[:ANCHORS_PAGE],
        "more": len(found) > ANCHORS_PAGE,
        "trust_roots": _trust_roots_pem(database),
        "tsa_urls": list(database.db.core.persistence.durability.anchor_tsa_urls),
        "lag_seconds": lag_seconds,
        "lag_records": lag_records,
    }


async def anchors(request: web.Request) -> web.Response:
    """The RFC 3161 anchors, oldest first, and the TSA trust root."""
    database = hosted(request)
    after = _int_query(request, "after", 0)
    return json_response(await database.run(_anchors, database, after))


def _verify(database: HostedDatabase) -> dict[str, Any]:
    durability = database.db.core.persistence.durability
    roots = None
    if durability.anchor_trust_roots is not None:
        from cosmictron.durability.anchorer import load_trust_roots

        roots = load_trust_roots(durability.anchor_trust_roots)
    result = verify(database.db.path, tsa_roots=roots, tsa_policy=durability.anchor_policy)
    return result.to_document()


async def verify_route(request: web.Request) -> web.Response:
    """Verify the database's whole history on the server (owner only)."""
    database = hosted(request)
    require_owner(database, caller_of(request), "verify it")
    return json_response(await database.run(_verify, database))
