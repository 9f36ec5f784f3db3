"""Commands that manage databases on a server: deploy, describe, list, delete."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
from rich.console import Console

from cosmictron.cli import nametypes
from cosmictron.cli.client import quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.cli.files import is_stdio
from cosmictron.cli.output import short, table


@click.command("deploy")
@click.argument("database", type=nametypes.DATABASE)
@click.argument(
    "module", type=click.Path(dir_okay=False, exists=True, path_type=Path, allow_dash=True)
)
@click.option("--clear", is_flag=True, help="Delete all existing data while updating.")
@click.option(
    "--engine",
    type=click.Choice(["v8", "quickjs"]),
    default=None,
    help="The JavaScript engine for a .js module (default: the one the module's first "
    "line names, else quickjs; docs/guide/javascript-modules.md).",
)
@server_command
def deploy(
    context: CommandContext, database: str, module: Path, clear: bool, engine: str | None
) -> None:
    """Create DATABASE from MODULE (a Python file, a .wasm or a .js module), or update it.

    The identity that first deploys a database owns it. Deploying runs your Python
    code with the server's rights, so it needs the right to deploy: the user who ran
    `start` holds the operator's token, which has it; anyone else asks the operator to
    run `grant deploy IDENTITY`. With no saved identity for the server, one is obtained
    and saved first (see `identity new`).

    MODULE - reads the module from standard input. A failed deploy shows where the
    module went wrong (its line, or the frames of its code) and changes nothing.

    Example: cosmictron-cli deploy quickstart examples/quickstart/app.py
    (a JavaScript module: cosmictron-cli deploy bank bank.js --engine v8)
    """
    if context.saved is None:
        saved = context.obtain_identity()
        context.output.note(
            f"No saved identity for {context.url}: obtained {short(saved.identity)} "
            f"and saved it in {context.settings.path}."
        )
    source = sys.stdin.buffer.read() if is_stdio(module) else module.read_bytes()
    # The module's name as typed, so its errors and tracebacks name the user's file.
    shown = "<stdin>" if is_stdio(module) else str(module)
    javascript = module.suffix.lower() in (".js", ".mjs", ".cjs") or (
        is_stdio(module) and engine is not None
    )
    if engine is not None and not javascript:
        raise click.UsageError(
            f"--engine is for JavaScript modules; {module.name} is not a .js file"
        )
    query = {
        "filename": shown,
        **({"clear": "true"} if clear else {}),
        **({"engine": engine} if engine else {}),
    }
    path = f"/v1/database/{quote(database)}?{urlencode(query)}"
    kind = (
        "application/wasm"
        if source[:4] == b"\0asm"
        else "text/javascript"
        if javascript
        else "text/x-python"
    )
    with context.output.progress(f"Uploading {module.name}", len(source)) as advance:
        reply = context.client.request("PUT", path, source, kind, advance)
    context.output.document(reply, lambda console: _print_deployed(console, reply, clear))


def _print_deployed(console: Console, reply: dict[str, Any], clear: bool) -> None:
    verb = "Created" if reply.get("created") else "Updated"
    cleared = ", data cleared" if clear and not reply.get("created") else ""
    console.print(
        f"{verb} database {reply['database']!r}{cleared} (tx_offset {reply['tx_offset']})."
    )
    console.print(f"  identity  {reply['identity']}")
    console.print(f"  owner     {reply['owner']}")
    migration = reply.get("migration")
    if migration:
        rows = [
            [name.replace("_", " "), ", ".join(map(str, names))]
            for name, names in migration.items()
            if isinstance(names, list) and names
        ]
        if rows:
            console.print(table(["schema change", "names"], rows))
        else:
            console.print("  no schema changes")


@click.command("describe")
@click.argument("database", type=nametypes.DATABASE)
@server_command
def describe(context: CommandContext, database: str) -> None:
    """Show DATABASE's tables, columns, indexes and reducers.

    Example: cosmictron-cli describe quickstart
    """
    reply = context.client.request("GET", f"/v1/database/{quote(database)}/schema")
    context.output.document(reply, lambda console: _print_schema(console, reply))


def _print_schema(console: Console, schema: dict[str, Any]) -> None:
    console.print(f"database   {schema['database']}")
    console.print(f"identity   {schema['identity']}")
    console.print(f"owner      {schema['owner']}")
    console.print(f"tx_offset  {schema['tx_offset']}")
    for entry in schema.get("tables", []):
        kind = ", ".join(
            word
            for word, on in (("public", entry.get("public")), ("event", entry.get("event")))
            if on
        )
        console.print()
        rows = []
        for column in entry["columns"]:
            notes = []
            if column["name"] in entry.get("primary_key", []):
                notes.append("primary key")
            if column.get("auto_inc"):
                notes.append("auto_inc")
            rows.append([column["name"], column["type"], ", ".join(notes)])
        title = f"table {entry['name']}" + (f" ({kind})" if kind else " (private)")
        console.print(table(["column", "type", ""], rows, title=title))
        for index in entry.get("indexes", []):
            unique = " unique" if index.get("unique") else ""
            columns = ", ".join(index["columns"])
            console.print(f"  index {index['name']}: {index['kind']}{unique} on ({columns})")
    reducers = [
        [reducer["name"], reducer["kind"], _params(reducer), _returns(reducer.get("returns"))]
        for reducer in schema.get("reducers", [])
    ]
    console.print()
    console.print(table(["reducer", "kind", "arguments", "returns"], reducers, title="reducers"))


def _params(reducer: dict[str, Any]) -> str:
    shown = []
    for param in reducer.get("params", []):
        optional = " (optional)" if param.get("optional") else ""
        shown.append(f"{param['name']}: {param['type']}{optional}")
    return ", ".join(shown)


def _returns(returns: dict[str, Any] | None) -> str:
    if not returns:
        return ""
    return str(returns.get("product") or returns.get("type"))


@click.command("list")
@server_command
def list_databases(context: CommandContext) -> None:
    """List the databases on the server, and which are yours.

    Example: cosmictron-cli list --server http://127.0.0.1:3000
    """
    reply = context.client.request("GET", "/v1/database")

    def human(console: Console) -> None:
        listed = reply["databases"]
        rows = [[d["name"], short(d["owner"]), "yes" if d["mine"] else ""] for d in listed]
        console.print(table(["database", "owner", "mine"], rows))
        console.print(f"{len(listed)} database{'s' if len(listed) != 1 else ''}")

    context.output.document(reply, human)


@click.command("delete")
@click.argument("database", type=nametypes.DATABASE)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@server_command
def delete(context: CommandContext, database: str, yes: bool) -> None:
    """Delete DATABASE and all its data (owner only); asks first unless --yes.

    Example: cosmictron-cli delete quickstart --yes
    """
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("deleting without a terminal to confirm needs --yes")
        click.confirm(
            f"Delete database {database!r} on {context.url} and all its data?", abort=True
        )
    reply = context.client.request("DELETE", f"/v1/database/{quote(database)}")
    context.output.document(
        reply, lambda console: console.print(f"Deleted database {database!r} from {context.url}.")
    )
