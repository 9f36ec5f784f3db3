"""Cluster mode: a reducer call over a follower's WebSocket runs on the database's leader.

Issue 19. A node that does not lead a database serves its WebSocket clients' reads and
subscriptions from its replica (``cluster/follower.py``); a reducer call there is a write,
so :class:`CallForwarder` sends it to the leader as HTTP forwarding does
(``server/forwarding.py``): ``POST <leader>/v1/database/<name>/call/<reducer>`` with the
client's token (the one its connection authenticated with, or was issued) and its
arguments as JSON, marked ``Cosmictron-Forwarded-By`` (forwarded once). The leader's reply
becomes the client's ``ReducerResult``: its return value (in the JSON form the HTTP
reply gives it) and ``tx_offset``, or its error code and message.

The result is delivered only once this node's replica has applied the call's
``tx_offset`` (at most ``forwarding.APPLY_WAIT_S``), so the client's own subscriptions
get the call's ``TransactionUpdate`` before its result, as on the leader.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from cosmictron.errors import CosmictronError
from cosmictron.host.transactions import CallOutcome
from cosmictron.server import forwarding
from cosmictron.server.routes import REGISTRY
from cosmictron.values import Timestamp


class CallForwarder:
    """Sends one WebSocket client's reducer calls to its database's leader (module doc).

    Args:
        app: the server's application (its registry, leader cache and client session).
        name: the database the client is connected to.
        token: the client's token, sent as its ``Authorization`` to the leader.
    """

    def __init__(self, app: web.Application, name: str, token: str) -> None:
        self.app = app
        self.name = name
        self.token = token

    def applies(self) -> bool:
        """Whether a call now goes to the leader: this node follows the database."""
        registry = self.app[REGISTRY]
        cluster = registry.cluster
        return (
            cluster is not None
            and not cluster.leads(self.name)
            and registry.follower(self.name) is not None
        )

    async def call(self, reducer: str, args: Any) -> CallOutcome:
        """Run ``reducer(args)`` on the leader; its outcome, once applied here.

        Raises:
            ClusterUnavailable: no leader now, or it did not answer (retry).
            CosmictronError: the leader's refusal, with its code and message.
        """
        try:
            body = json.dumps(args).encode()
        except (TypeError, ValueError) as exc:
            error = CosmictronError(
                f"a call through a follower sends its arguments to the leader as JSON, "
                f"and these are not JSON: {exc}"
            )
            error.code = "invalid_request"
            raise error from None
        path = f"/v1/database/{self.name}/call/{reducer}"
        status, reply, retry_after = await forwarding.post_to_leader(
            self.app, self.name, path, self.token, body
        )
        if status != 200:
            raise forwarding.leader_error(reply, status, retry_after)
        offset = int(reply["tx_offset"])
        await forwarding.applied_here(self.app, self.name, offset)
        now_us = int(time.time() * 1_000_000)
        return CallOutcome(reply.get("return_value"), offset, Timestamp(now_us))
