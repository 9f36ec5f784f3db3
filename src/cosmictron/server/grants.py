"""The grant routes: the operator lists, grants and revokes rights (``rights.py`` keeps them).

``GET /v1/grants/{right}`` lists who holds a right, ``PUT /v1/grants/{right}/{identity}``
grants it and ``DELETE /v1/grants/{right}/{identity}`` revokes it; all three are the
operator's alone (403 ``permission_denied`` for anyone else). Granting or revoking twice
is not an error: the reply's ``changed`` says whether this request changed anything.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from cosmictron.server.replies import json_response
from cosmictron.server.rights import check_right, parse_identity
from cosmictron.server.routes import RIGHTS, caller_of


async def list_grants(request: web.Request) -> web.Response:
    rights = request.app[RIGHTS]
    right = request.match_info["right"]
    rights.require_operator(caller_of(request), f"list who holds the right to {right}")
    check_right(right)
    return json_response(
        {
            "right": right,
            "operator": rights.operator.hex(),
            "identities": [identity.hex() for identity in rights.granted(right)],
        }
    )


async def grant(request: web.Request) -> web.Response:
    rights = request.app[RIGHTS]
    right = request.match_info["right"]
    rights.require_operator(caller_of(request), f"grant the right to {right}")
    identity = parse_identity(request.match_info["identity"])
    changed = await asyncio.to_thread(rights.grant, right, identity)
    return json_response(
        {"right": right, "identity": identity.hex(), "granted": True, "changed": changed}
    )


async def revoke(request: web.Request) -> web.Response:
    rights = request.app[RIGHTS]
    right = request.match_info["right"]
    rights.require_operator(caller_of(request), f"revoke the right to {right}")
    identity = parse_identity(request.match_info["identity"])
    changed = await asyncio.to_thread(rights.revoke, right, identity)
    return json_response(
        {"right": right, "identity": identity.hex(), "granted": False, "changed": changed}
    )
