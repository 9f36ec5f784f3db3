"""``cosmictron-cli mcp <db>``: the Model Context Protocol on stdio, for one database.

An MCP client (Claude Desktop, an IDE, the SDK's ``stdio_client``) starts this command
and speaks JSON-RPC on its stdin and stdout. It serves the database's tools by relaying
them to the server's ``POST /v1/database/{db}/mcp`` with the saved token: one
implementation of the tools (``server/mcp_tools.py``), so the stdio and HTTP transports
can never differ in what they allow (docs/design/mcp.md).

Before it reads stdin it checks, with one request to the MCP route, that the server
answers, the token is good, the database exists and the server speaks MCP; a failure is
one line on stderr and a non-zero exit (``cli/main.py``), never a half-started server.
Afterwards stdout carries JSON-RPC only; notes go to stderr.
"""

from __future__ import annotations

import json
from typing import Any

import click

from cosmictron.cli import nametypes
from cosmictron.cli.client import ServerClient, quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.errors import ConnectionLost

MCP_ACCEPT = "application/json, text/event-stream"
"""What the streamable HTTP transport requires a client to accept."""

TOOL_CALL_TIMEOUT_S = 660.0
"""How long one relayed request may take: past ``recall``'s procedure timeout (600 s)."""


def mcp_path(database: str) -> str:
    return f"/v1/database/{quote(database)}/mcp"


def check_route(client: ServerClient, database: str) -> dict[str, Any]:
    """Ping the database's MCP route; the server's error (bad token, unknown database,
    no MCP support) is raised as a ``ServerError``, no server as ``CannotConnect``."""
    ping = {"jsonrpc": "2.0", "id": 0, "method": "ping"}
    reply: dict[str, Any] = client.request(
        "POST",
        mcp_path(database),
        json.dumps(ping).encode(),
        "application/json",
        headers={"Accept": MCP_ACCEPT},
    )
    return reply


@click.command("mcp")
@click.argument("database", type=nametypes.DATABASE)
@server_command
def mcp(context: CommandContext, database: str) -> None:
    """Serve DATABASE's tools to an MCP client on stdin/stdout.

    For Claude Desktop or any MCP client that starts a command: the tools
    describe_schema, run_sql, call_reducer and (with cosmictron.agents) search_memory,
    run on the server as the identity saved for it. stdout carries the protocol's
    JSON-RPC messages only, so --json changes nothing. Needs the mcp extra.

    Example: cosmictron-cli mcp quickstart --server http://127.0.0.1:3000
    """
    try:
        import mcp as _  # noqa: F401
    except ImportError:
        raise click.ClickException(
            "the mcp command needs the mcp extra: pip install 'cosmictron[mcp]'"
        ) from None
    check_route(context.client, database)
    from cosmictron.cli.mcp_relay import serve_stdio

    url = context.url + mcp_path(database)
    serve_stdio(url, context.client.token, database, ConnectionLost.code, TOOL_CALL_TIMEOUT_S)
