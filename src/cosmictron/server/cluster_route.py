"""``GET /v1/cluster``: the cluster's nodes, leaders and replicas (issue 19, DESIGN.md §9).

The document is ``{"nodes": [{"node_id", "url", "status"}], "databases": [{"name",
"leader", "replicas": [{"node_id", "applied_offset", "lag"}]}]}``, read from JetStream KV
(``cluster/node.py``), so any node answers for the whole cluster. A single-node server
has no cluster: ``{"nodes": [], "databases": []}``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from cosmictron.errors import ClusterUnavailable
from cosmictron.server.replies import json_response
from cosmictron.server.routes import REGISTRY


async def cluster_status(request: web.Request) -> web.Response:
    """The cluster's status document (see the module doc)."""
    registry = request.app[REGISTRY]
    cluster = registry.cluster
    if cluster is None:
        return json_response({"nodes": [], "databases": []})
    try:
        document = await asyncio.to_thread(cluster.status)
    except Exception as exc:
        raise ClusterUnavailable(f"JetStream did not answer ({exc!r})", 2.0) from exc
    return json_response(document)
