"""Commands that read and change a database's data: call and sql."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console

from cosmictron.cli import nametypes
from cosmictron.cli.client import ServerError, quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.cli.output import table


def parse_argument(text: str) -> Any:
    """A command-line value as JSON when it parses (5, true, "x", [1]), else the text.

    >>> parse_argument("5"), parse_argument("[1, 2]"), parse_argument("hello")
    (5, [1, 2], 'hello')
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def quoting_hint(args: Sequence[str], values: Sequence[Any], message: str) -> str | None:
    """A hint for an argument sent as JSON where the reducer wanted text, or None.

    >>> quoting_hint(["2024"], [2024], "argument 'name': expected str, got 2024 (int)")
    'arguments are read as JSON: 2024 was sent as a number; to send it as text, write \'"2024"\''
    """
    if "expected str" not in message:
        return None
    for text, value in zip(args, values, strict=True):
        if not isinstance(value, str):
            kind = JSON_KINDS.get(type(value), "JSON value")
            quoted = json.dumps(text)
            return (
                f"arguments are read as JSON: {text} was sent as a {kind}; "
                f"to send it as text, write '{quoted}'"
            )
    return None


JSON_KINDS = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
JSON_KINDS[type(None)] = "null"


@click.command("call")
@click.argument("database", type=nametypes.DATABASE)
@click.argument("reducer", type=nametypes.REDUCER)
@click.argument("args", nargs=-1)
@server_command
def call(context: CommandContext, database: str, reducer: str, args: tuple[str, ...]) -> None:
    """Call REDUCER in DATABASE with ARGS; print its return value and tx_offset.

    \b
    Each ARG is read as JSON when it parses, and passed as text otherwise:
    5 and 1.5 are numbers, true and false booleans, null is null, [1, 2] an
    array, {"a": 1} an object, and hello (not JSON) the text "hello". A text
    that looks like JSON needs JSON's quotes inside the shell's: '"2024"'
    sends the text 2024, and 2024 the number.

    The call is made as the saved identity, if there is one. Put `--` before
    arguments that start with a dash. If the reducer raises and you own the
    database, the frames of your module's code follow the error.

    Example: cosmictron-cli call quickstart add_task "Write docs" 3
    """
    values = [parse_argument(arg) for arg in args]
    path = f"/v1/database/{quote(database)}/call/{quote(reducer)}"
    try:
        reply = context.client.request(
            "POST", path, json.dumps(values).encode(), "application/json"
        )
    except ServerError as exc:
        hint = quoting_hint(args, values, str(exc))
        if hint is None:
            raise
        raise ServerError(exc.status, exc.code, f"{exc} ({hint})", exc.traceback) from None

    def human(console: Console) -> None:
        console.print(f"return_value: {json.dumps(reply['return_value'])}")
        console.print(f"tx_offset: {reply['tx_offset']}")

    context.output.document(reply, human)


@click.command("sql")
@click.argument("database", type=nametypes.DATABASE)
@click.argument("query")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A value for :NAME in the query (parsed as JSON when it can be); repeatable.",
)
@server_command
def sql(context: CommandContext, database: str, query: str, params: tuple[str, ...]) -> None:
    """Run one SQL statement in DATABASE: SELECT for anyone, DML for the owner.

    Example: cosmictron-cli sql quickstart "SELECT * FROM task WHERE priority > :p" --param p=1
    """
    values = {}
    for param in params:
        name, equals, value = param.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {param!r}", param_hint="--param")
        values[name] = parse_argument(value)
    body = json.dumps({"query": query, "params": values}).encode()
    reply = context.client.request(
        "POST", f"/v1/database/{quote(database)}/sql", body, "application/json"
    )
    context.output.document(reply, lambda console: _print_result(console, reply))


def _print_result(console: Console, result: dict[str, Any]) -> None:
    if result.get("rows_affected") is not None:
        count = result["rows_affected"]
        if result.get("columns"):  # RETURNING: the rows written, then the count
            columns = result["columns"]
            returned = [[row.get(column) for column in columns] for row in result["rows"]]
            console.print(table(columns, returned))
        console.print(
            f"{count} row{'s' if count != 1 else ''} affected (tx_offset {result['tx_offset']})."
        )
        return
    columns = result["columns"]
    rows = [[row.get(column) for column in columns] for row in result["rows"]]
    console.print(table(columns, rows))
    console.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
