"""Entry point of ``cosmictron-cli``; every error is one line and a non-zero exit."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from typing import Any

import click

from cosmictron import __version__
from cosmictron.errors import CosmictronError
from cosmictron.host import Database


@click.group()
@click.version_option(__version__, prog_name="cosmictron-cli")
def cli() -> None:
    """Cosmictron: a database in which the application runs inside the database.

    The server commands (start, deploy, call, sql, ...) arrive with the server; today
    the CLI runs reducers against a local data directory.
    """


@cli.command("start")
@click.option(
    "--listen",
    default="127.0.0.1:3000",
    show_default=True,
    help="HOST:PORT to listen on (port 0 picks a free one and prints it).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default="./cosmictron-data",
    show_default=True,
    help="Where the databases, the server key and uploads live.",
)
@click.option(
    "--profile",
    type=click.Choice(["development", "balanced", "production", "maximum_safety"]),
    default=None,
    help="Durability profile for every database (default: each database's env, "
    "config.toml, then production).",
)
def start(listen: str, data_dir: str, profile: str | None) -> None:
    """Start the server and run until SIGTERM or Ctrl-C (then drain, sync and close).

    Example: cosmictron-cli start --listen 127.0.0.1:3000 --data-dir ./data
    """
    from pathlib import Path

    from cosmictron.server import serve

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {listen!r}", param_hint="--listen")
    serve(host, int(port), Path(data_dir), profile)


@cli.command("local-call")
@click.argument("data_dir", type=click.Path(file_okay=False))
@click.argument("reducer")
@click.argument("args", nargs=-1)
@click.option(
    "--module",
    "module_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Module to create the database with (needed only the first time).",
)
def local_call(data_dir: str, reducer: str, args: tuple[str, ...], module_path: str | None) -> None:
    """Call REDUCER in the database stored in DATA_DIR, without a server.

    Each ARG is parsed as JSON when it can be (5, 1.5, true, "text", [1, 2]) and passed as
    a string otherwise. Prints the return value and the transaction offset as JSON.

    Example: cosmictron-cli local-call ./data run_agent "Summarise the report"
    """
    values = [_parse_argument(arg) for arg in args]
    with Database.open(data_dir, module_path) as database:
        outcome = database.execute_reducer(reducer, values)
    reply = {"return_value": _jsonable(outcome.return_value), "tx_offset": outcome.tx_offset}
    click.echo(json.dumps(reply))


def _parse_argument(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _jsonable(value: Any) -> Any:
    """A JSON form of a reducer's return value (rows become objects keyed by column)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except CosmictronError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
