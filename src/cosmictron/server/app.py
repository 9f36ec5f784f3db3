"""The aiohttp application, and running it as a process until SIGTERM or SIGINT.

aiohttp (on uvloop where available) was chosen by measurement: on our 2-core machine it
did about 74k WebSocket round trips/s with 16 connections, uvicorn+starlette about 31k
(docs/design/server.md). ``serve`` opens every database, listens, prints one line with
the address, and on SIGTERM/SIGINT shuts down in order: stop accepting, let in-flight
requests finish (aiohttp's shutdown timeout), then close each database, which waits for
its calls, syncs its log and closes it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from cosmictron import limits
from cosmictron.cluster.keys import adopt_authority
from cosmictron.cluster.node import ClusterNode
from cosmictron.errors import (
    ClusterUnavailable,
    CosmictronError,
    InvalidRequest,
    RateLimited,
    error_document,
)
from cosmictron.module import set_wasm_cache_directory
from cosmictron.server import (
    audit,
    audit_keys,
    backup,
    bulk,
    cluster_route,
    console,
    export,
    forwarding,
    grants,
    listener,
    logs,
    mcp_route,
    metrics,
    origins,
    pgwire,
    routes,
    staleness,
    throttle,
    websocket,
)
from cosmictron.server.auth import TokenAuthority
from cosmictron.server.connection_caps import GUARD
from cosmictron.server.registry import DatabaseRegistry
from cosmictron.server.replies import SHOWS_TRACEBACK, json_response
from cosmictron.server.rights import OPEN_SANDBOXED_DEPLOYS, Rights, share_with_cluster
from cosmictron.server.routes import AUTHORITY, REGISTRY, RIGHTS
from cosmictron.values import Identity

logger = logging.getLogger(__name__)

REQUEST_BYTES_MAX = 64 * 1024 * 1024
"""The largest request body (a module, a SQL text, arguments)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTES = [
    web.get("/v1/health", routes.health),
    web.post("/v1/identity", routes.new_identity),
    web.get("/v1/identity", routes.who_am_i),
    web.get("/v1/database", routes.list_databases),
    web.put("/v1/database/{name}", routes.deploy),
    web.delete("/v1/database/{name}", routes.delete),
    web.get("/v1/database/{name}/schema", routes.schema),
    web.post("/v1/database/{name}/call/{reducer}", routes.call),
    web.post("/v1/database/{name}/sql", routes.sql),
    web.post("/v1/database/{name}/bulk_insert/{table}", bulk.bulk_insert),
    web.get("/v1/database/{name}/export/{table}", export.export),
    web.get("/v1/grants/{right}", grants.list_grants),
    web.put("/v1/grants/{right}/{identity}", grants.grant),
    web.delete("/v1/grants/{right}/{identity}", grants.revoke),
    web.get("/v1/database/{name}/logs", logs.logs),
    web.get("/v1/database/{name}/backup", backup.backup),
    web.put("/v1/database/{name}/restore", backup.restore),
    web.get("/metrics", metrics.metrics),
    web.get("/v1/database/{name}/subscribe", websocket.subscribe),
    # The compliance ledger (issue 13, server/audit.py).
    web.get("/v1/database/{name}/audit/checkpoint", audit.checkpoint),
    web.get("/v1/database/{name}/audit/inclusion", audit.inclusion),
    web.get("/v1/database/{name}/audit/consistency", audit.consistency),
    web.get("/v1/database/{name}/audit/verify", audit.verify_route),
    # RFC 3161 anchors (issue 13, anchoring).
    web.get("/v1/database/{name}/audit/anchors", audit.anchors),
    # Signing keys: list, rotate, revoke (issue 13, server/audit_keys.py).
    web.get("/v1/database/{name}/audit/keys", audit_keys.list_keys),
    web.post("/v1/database/{name}/audit/keys/rotate", audit_keys.rotate_key),
    web.delete("/v1/database/{name}/audit/keys/{key}", audit_keys.revoke_key),
    # The Model Context Protocol, streamable HTTP (issue 14, server/mcp_route.py).
    web.post("/v1/database/{name}/mcp", mcp_route.mcp),
    # The web console (issue 20): the page and its files, from the package (server/console.py).
    web.get("/console", console.redirect),
    web.get("/console/", console.index),
    web.get("/console/{file}", console.asset),
    # Cluster mode (issue 19, server/cluster_route.py).
    web.get("/v1/cluster", cluster_route.cluster_status),
]
"""Every route of the server, on one screen (docs/reference/http.md, websocket.md): the
method, the path, the handler. No module adds a route of its own. A ``GET`` answers
``HEAD`` too (aiohttp's ``allow_head``)."""

OnListening = Callable[[str, Identity, str], "str | None"]
"""Called with the server's URL, the operator and its token once the socket is bound and
before the "listening" line is printed; returns a line to print after it, or None.
``cosmictron-cli start`` saves the operator's token in the CLI settings with it."""

Announce = Callable[[str, dict[str, Any]], None]
"""Called instead of printing a line for a person (``start --json``): the event
(``listening``, ``shutting_down``, ``stopped``) and its fields (``listening``: ``url``,
``data_dir``, ``databases``, and ``note``, the line ``OnListening`` returned)."""


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as ``{"error": {"code", "message"}}`` with its status."""
    try:
        return await handler(request)
    except CosmictronError as exc:
        document = error_document(exc, show_traceback=bool(request.get(SHOWS_TRACEBACK)))
        response = json_response({"error": document}, status=exc.http_status)
        if isinstance(exc, (RateLimited, ClusterUnavailable)):
            response.headers["Retry-After"] = throttle.retry_after_header(exc.retry_after_s)
        return response
    except web.HTTPRequestEntityTooLarge as exc:
        message = f"the request body is larger than the limit ({REQUEST_BYTES_MAX} bytes)"
        return json_response(error_body("too_large", message), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text or exc.reason
        if exc.status == 404:
            message = f"no route {request.method} {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        code = InvalidRequest.code if exc.status == 400 else exc.reason.lower().replace(" ", "_")
        return json_response(error_body(code, message), status=exc.status)
    except ConnectionResetError:
        # The client went away mid-request (say, before sending the body it declared):
        # its mistake, not ours, and no reply can reach it.
        message = "the connection was lost before the request was read whole"
        return json_response(error_body(InvalidRequest.code, message), status=400)
    except Exception:
        logger.exception("internal error in %s %s", request.method, request.path)
        return json_response(
            error_body("internal_error", "internal error; see the server log"), status=500
        )


def build_app(
    registry: DatabaseRegistry,
    authority: TokenAuthority,
    rights: Rights,
    scrape_token: str | None = None,
    open_sandboxed_deploys: bool = False,
) -> web.Application:
    # guard_requests inside errors_as_json: a body that timed out becomes a JSON 408;
    # origins.guard too: a refused Origin is a JSON 403 (server/origins.py).
    middlewares = [errors_as_json, origins.guard, listener.guard_requests]
    if registry.cluster is not None:  # last: it sees the matched route (server/forwarding.py)
        middlewares.append(forwarding.forward_writes)
    app = web.Application(middlewares=middlewares, client_max_size=REQUEST_BYTES_MAX)
    app[REGISTRY] = registry
    app[AUTHORITY] = authority
    app[RIGHTS] = rights
    app[OPEN_SANDBOXED_DEPLOYS] = open_sandboxed_deploys  # server/rights.py
    if scrape_token is not None:  # who sees per-database metrics (server/metrics.py)
        app[metrics.SCRAPE_TOKEN] = scrape_token
    app.add_routes(ROUTES)
    app.on_shutdown.append(logs.end_followers)
    websocket.setup(app)  # the WebSocket clients' shared state; closes them on shutdown
    staleness.setup(app)  # cluster mode: tells WebSocket clients when their view is stale
    throttle.setup(app)  # query budgets and rate limits, from limits.py and the environment
    listener.setup(app)  # connection caps and time limits (server/connections.py)
    mcp_route.setup(app)  # the MCP session manager, stopped with the app
    forwarding.setup(app)  # cluster mode: the session writes are forwarded to leaders on

    origins.setup(app)  # CORS and the WebSocket Origin check (COSMICTRON_ALLOWED_ORIGINS)
    return app


def serve(
    host: str,
    port: int,
    data_dir: Path,
    profile: str | None,
    on_listening: OnListening | None = None,
    announce: Announce | None = None,
    open_sandboxed_deploys: bool = False,
    pg_listen: tuple[str, int] | None = None,
    cluster: ClusterNode | None = None,
) -> None:
    """Run the server in this process until SIGTERM or SIGINT; with ``pg_listen``, also
    speak the PostgreSQL protocol on that address (``server/pgwire``); with ``cluster`` (a
    connected ``ClusterNode``), as one node of a cluster (issue 19)."""
    run = _serve(
        host,
        port,
        data_dir,
        profile,
        on_listening,
        announce,
        open_sandboxed_deploys,
        pg_listen,
        cluster,
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed on Linux and macOS
        asyncio.run(run)
    else:
        uvloop.run(run)


async def _serve(
    host: str,
    port: int,
    data_dir: Path,
    profile: str | None,
    on_listening: OnListening | None,
    announce: Announce | None = None,
    open_sandboxed_deploys: bool = False,
    pg_listen: tuple[str, int] | None = None,
    cluster: ClusterNode | None = None,
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    # The key and the operator's token are read, and their files closed, before any
    # module is imported (docs/guide/security.md says what that does and does not protect).
    authority = TokenAuthority.load_or_create(data_dir / "server")
    rights = Rights.load_or_create(data_dir / "server", authority)
    if cluster is not None:  # one token key and operator for every node (cluster/keys.py)
        shared = await asyncio.to_thread(
            adopt_authority, cluster.connection, data_dir / "server", replicas=cluster.replicas
        )
        if shared.operator_token != rights.operator_token:
            authority = TokenAuthority.load_or_create(data_dir / "server")
            rights = Rights.load_or_create(data_dir / "server", authority)
        await asyncio.to_thread(share_with_cluster, rights, cluster.connection, cluster.replicas)
    scrape_token = metrics.load_or_create_scrape_token(data_dir / "server")
    # A long query's thread must hand the interpreter to a reducer call or the event
    # loop quickly (docs/design/query-snapshots.md).
    sys.setswitchinterval(limits.query_switch_interval_s)
    set_wasm_cache_directory(data_dir / "cache" / "wasm")  # compiled guests survive restarts
    registry = DatabaseRegistry(data_dir, profile, cluster)
    await asyncio.to_thread(registry.open_all)
    app = build_app(registry, authority, rights, scrape_token, open_sandboxed_deploys)
    runner = web.AppRunner(app, shutdown_timeout=10.0, **listener.runner_options(app))
    await runner.setup()
    # Ctrl-C is a clean shutdown from before the server says it listens: a signal between
    # "listening" and the handlers was a KeyboardInterrupt, exit 130 (CI saw it once).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Not a web.TCPSite: every connection is counted and timed (server/connections.py).
    listening = await listener.listen(runner, host, port)
    bound = listening.sockets[0].getsockname()
    url = f"http://{bound[0]}:{bound[1]}"
    if cluster is not None:
        cluster.url = url
    pg_server = None
    if pg_listen is not None:  # the PostgreSQL port (issue 22, server/pgwire/)
        pg_server = await pgwire.listen_pg(
            pg_listen[0],
            pg_listen[1],
            registry,
            authority,
            app[throttle.THROTTLE],
            app.get(GUARD),
            app=app,  # a follower forwards its PostgreSQL writes through it
        )
        pg_bound = pg_server.sockets[0].getsockname()
        pg_line = f"postgresql on {pg_bound[0]}:{pg_bound[1]}"
    note = on_listening(url, rights.operator, rights.operator_token) if on_listening else None
    count = len(registry.names())
    databases = f"{count} database{'' if count == 1 else 's'}"
    if announce is not None:
        fields = {"url": url, "data_dir": str(data_dir), "databases": count, "note": note}
        if pg_server is not None:
            fields["pg_listen"] = pg_line.removeprefix("postgresql on ")
        announce("listening", fields)
    else:
        pg_part = f", {pg_line}" if pg_server is not None else ""
        print(f"cosmictron listening on {url} (data {data_dir}, {databases}{pg_part})", flush=True)
        if note:
            print(note, flush=True)
    try:
        await stop.wait()
    finally:
        if announce is not None:
            announce("shutting_down", {})
        else:
            print("cosmictron shutting down: draining requests, syncing logs", flush=True)
        listening.close()
        if pg_server is not None:
            pg_server.close()
        await runner.cleanup()
        await asyncio.to_thread(registry.close_all)
        if announce is not None:
            announce("stopped", {})
        else:
            print("cosmictron stopped", flush=True)
        sys.stdout.flush()
