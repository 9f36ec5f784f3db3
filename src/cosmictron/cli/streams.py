"""Commands that follow a database as it changes: logs and subscribe.

Both may run until Ctrl-C, which ends them with exit status 0: stopping is the normal
way out of ``logs -f`` and ``subscribe``. Under ``--json`` they print NDJSON, one line
per item, flushed as it arrives.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import urllib.parse
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console

from cosmictron.cli import nametypes
from cosmictron.cli.client import HandshakeRefused, ServerError, quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.cli.output import table

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@click.command("logs")
@click.argument("database", type=nametypes.DATABASE)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option(
    "-n",
    "--num-lines",
    type=click.IntRange(min=1),
    default=None,
    help="Show only the last N lines [default: all the server keeps].",
)
@click.option(
    "--level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default=None,
    help="Show only lines at this level or above.",
)
@server_command
def logs(
    context: CommandContext, database: str, follow: bool, num_lines: int | None, level: str | None
) -> None:
    """Print DATABASE's module logs (owner only); -f follows new lines.

    Example: cosmictron-cli logs quickstart -f --num-lines 20 --level INFO
    """
    query = {"num_lines": num_lines, "follow": "true" if follow else None, "level": level}
    query_string = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    path = f"/v1/database/{quote(database)}/logs" + (f"?{query_string}" if query_string else "")
    lines = _at_or_above(_with_route_hint(context, path), level)
    if not follow:
        records = list(lines)

        def human(console: Console) -> None:
            for record in records:
                console.print(format_log(record))

        context.output.document({"database": database, "logs": records}, human)
        return
    try:
        for record in lines:
            context.output.line(record, functools.partial(_print_log, record))
    except KeyboardInterrupt:
        return


def _with_route_hint(context: CommandContext, path: str) -> Any:
    try:
        yield from context.client.stream_lines(path)
    except ServerError as exc:
        if str(exc).startswith("no route"):
            message = f"{exc}: the server at {context.url} does not serve module logs yet"
            raise ServerError(exc.status, exc.code, message) from None
        raise


def _at_or_above(records: Any, level: str | None) -> Any:
    """Filter here too, so a server that ignores ``level`` still shows what was asked."""
    floor = LEVELS.index(level.upper()) if level else 0
    for record in records:
        named = str(record.get("level", "")).upper()
        if named not in LEVELS or LEVELS.index(named) >= floor:
            yield record


def _print_log(record: dict[str, Any], console: Console) -> None:
    console.print(format_log(record))


def format_log(record: dict[str, Any]) -> str:
    """One log record as a line: time, level, the reducer that logged it, the message.

    >>> format_log({"ts_us": 0, "level": "INFO", "message": "hi", "reducer": "run"})
    '1970-01-01T00:00:00.000000Z INFO     [run] hi'
    """
    when = record.get("timestamp")
    if when is None and isinstance(record.get("ts_us"), int):
        moment = datetime.datetime.fromtimestamp(record["ts_us"] / 1e6, datetime.UTC)
        when = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    reducer = f"[{record['reducer']}] " if record.get("reducer") else ""
    return f"{when or '-'} {record.get('level', '-')!s:<8} {reducer}{record.get('message', '')}"


@click.command("subscribe")
@click.argument("database", type=nametypes.DATABASE)
@click.argument("queries", nargs=-1, required=True, metavar="QUERY...")
@click.option(
    "--num-updates",
    type=click.IntRange(min=0),
    default=None,
    help="Exit after this many transaction updates; 0 prints the current rows and "
    "exits [default: run until Ctrl-C].",
)
@server_command
def subscribe(
    context: CommandContext, database: str, queries: tuple[str, ...], num_updates: int | None
) -> None:
    """Print the rows QUERY selects in DATABASE, then every change to them, live.

    Each QUERY is one SELECT; the initial rows come first, then one update per
    transaction (+ inserted, - deleted rows). Under --json every server message is an
    NDJSON line (IdentityToken without its token).

    Example: cosmictron-cli subscribe quickstart "SELECT * FROM task" --num-updates 1
    """
    try:
        asyncio.run(_follow(context, database, queries, num_updates))
    except KeyboardInterrupt:
        return
    except HandshakeRefused as exc:
        raise _explain_refusal(context, database, exc) from None


async def _follow(
    context: CommandContext, database: str, queries: Sequence[str], num_updates: int | None
) -> None:
    from cosmictron.cli.websocket import subscribe_messages  # aiohttp: only when needed

    output = context.output
    updates = 0
    stream = subscribe_messages(context.url, database, context.client.token, queries)
    async for message in stream:
        ((kind, body),) = message.items()
        if kind == "IdentityToken":
            message = {kind: {k: v for k, v in body.items() if k != "token"}}
        if kind == "SubscriptionError":
            raise ServerError(400, "subscription_error", str(body.get("error")))
        output.line(message, functools.partial(_print_message, kind, body))
        if kind == "SubscribeApplied" and num_updates == 0:  # the current rows only
            await stream.aclose()
            return
        if kind == "TransactionUpdate":
            updates += 1
            if num_updates is not None and updates >= num_updates:
                await stream.aclose()
                return


def _print_message(kind: str, body: dict[str, Any], console: Console) -> None:
    if kind == "SubscribeApplied":
        for entry in body.get("tables", []):
            rows = entry.get("rows", [])
            columns = list(rows[0]) if rows else ["(no rows)"]
            count = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
            # A line of its own: as a table's title it wrapped to the table's width.
            console.print(f"{entry['table_name']}: {count} at tx_offset {body.get('tx_offset')}")
            console.print(table(columns, [list(row.values()) for row in rows]))
    elif kind == "TransactionUpdate":
        console.print(f"tx_offset {body.get('tx_offset')} at {body.get('timestamp')}")
        for entry in body.get("tables", []):
            for row in entry.get("deletes", []):
                console.print(f"  - {entry['table_name']} {json.dumps(row)}")
            for row in entry.get("inserts", []):
                console.print(f"  + {entry['table_name']} {json.dumps(row)}")


def _explain_refusal(
    context: CommandContext, database: str, refused: HandshakeRefused
) -> ServerError:
    """Turn a refused upgrade (status only, no body) into the server's own words."""
    if refused.status == 404:
        # The database may not exist, or the server may predate subscriptions: ask.
        context.client.request("GET", f"/v1/database/{quote(database)}/schema")
        message = f"the server at {context.url} does not serve subscriptions yet (HTTP 404)"
        return ServerError(404, "not_found", message)
    message = f"the server refused the subscription: HTTP {refused.status} {refused}"
    return ServerError(refused.status, refused.code, message)
