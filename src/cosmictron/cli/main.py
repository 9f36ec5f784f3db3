"""Entry point of ``cosmictron-cli``; every error is one line and a non-zero exit.

``main`` is the CLI's one edge (STYLE.md: "the CLI one ``main`` wrapper"): whatever a
command raises becomes ``error: <message>`` on stderr and one of these exit codes,
which scripts may rely on (docs/guide/cli.md lists them too):

====  ==========================================================================
0     success (also Ctrl-C ending ``logs -f`` or ``subscribe``, their normal end)
1     the request failed: the server reported an error (unknown database or
      reducer, the reducer raised, permission denied, bad token), a local
      database error (``local-call``), an unreadable settings file, or a declined
      confirmation
2     usage: a missing or bad argument or option, including a bad ``--server`` URL
3     cannot connect: no server at the URL, a dropped connection, a timeout, or
      something that is not a Cosmictron server answered
4     a bug in cosmictron-cli (set ``COSMICTRON_DEBUG=1`` for the traceback)
130   interrupted by Ctrl-C
====  ==========================================================================
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import json
import os
import shutil
import sys
from typing import Any

import click

from cosmictron import __version__
from cosmictron.cli import nametypes
from cosmictron.cli.client import ClientError
from cosmictron.cli.lazygroup import LazyGroup
from cosmictron.errors import CosmictronError, InvalidRequest, render_error
from cosmictron.values import Identity

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUG = 4
EXIT_INTERRUPTED = 130


COMMANDS = {
    "deploy": "cosmictron.cli.databases:deploy",
    "call": "cosmictron.cli.data:call",
    "sql": "cosmictron.cli.data:sql",
    "describe": "cosmictron.cli.databases:describe",
    "list": "cosmictron.cli.databases:list_databases",
    "delete": "cosmictron.cli.databases:delete",
    "identity": "cosmictron.cli.identity:identity",
    "logs": "cosmictron.cli.streams:logs",
    "subscribe": "cosmictron.cli.streams:subscribe",
    "generate": "cosmictron.cli.generate:generate",
    "import": "cosmictron.cli.transfer:import_csv",
    "export": "cosmictron.cli.transfer:export",
    "grant": "cosmictron.cli.rights:grant",
    "revoke": "cosmictron.cli.rights:revoke",
    "backup": "cosmictron.cli.backup:backup",
    "restore": "cosmictron.cli.backup:restore",
    "verify": "cosmictron.cli.verify:verify_command",  # the compliance ledger (issue 13)
    "export-audit": "cosmictron.cli.audit:export_audit",  # audit bundles (issue 13)
    "keys": "cosmictron.cli.keys:keys",  # signing keys: list, rotate, revoke (issue 13)
    "mcp": "cosmictron.cli.mcp:mcp",  # the Model Context Protocol on stdio (issue 14)
    "console": "cosmictron.cli.console:console",  # the web console's address (issue 20)
    "cluster": "cosmictron.cli.cluster:cluster",  # cluster mode (issue 19): cluster status
}
"""Every command but ``start`` and ``local-call``, by where it lives: a process imports
only the module of the command it runs (``LazyGroup``)."""


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
@click.version_option(__version__, prog_name="cosmictron-cli")
def cli() -> None:
    """Cosmictron: a database in which the application runs inside the database.

    `start` runs a server; the other commands talk to one (--server URL, else
    $COSMICTRON_SERVER, else the saved default, else http://127.0.0.1:3000) as the
    identity saved for it (see `identity`). `local-call` works on a data directory
    without a server.

    Exit codes: 0 success, 1 the request failed, 2 usage, 3 cannot connect, 4 a bug in
    the CLI, 130 interrupted.
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
    default="./data",
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
@click.option(
    "--open-sandboxed-deploys",
    is_flag=True,
    envvar="COSMICTRON_OPEN_SANDBOXED_DEPLOYS",
    help="Let every identity with a token create databases with sandboxed (WASM, "
    "JavaScript) modules; Python modules still need the right to deploy "
    "(docs/guide/security.md).",
)
@click.option(
    "--pg-listen",
    default=None,
    envvar="COSMICTRON_PG_LISTEN",
    help="HOST:PORT to speak the PostgreSQL wire protocol on (off by default; port 0 "
    "picks a free one); the password is a token (docs/guide/postgres-clients.md).",
)
@click.option(
    "--cluster",
    "cluster_urls",
    default=None,
    envvar="COSMICTRON_CLUSTER",
    help="Run as a node of a cluster: the NATS JetStream servers, nats://HOST:PORT[,...] "
    "(docs/design/cluster-log.md). Off by default: one node needs no NATS.",
)
@click.option(
    "--node-id",
    default=None,
    envvar="COSMICTRON_NODE_ID",
    help="This node's name in the cluster (default: the host name).",
)
@click.option(
    "--json",
    "json_mode",
    is_flag=True,
    help="Print JSON for programs: one object per line (listening, shutting_down, stopped).",
)
def start(
    listen: str,
    data_dir: str,
    profile: str | None,
    open_sandboxed_deploys: bool,
    pg_listen: str | None,
    cluster_urls: str | None,
    node_id: str | None,
    json_mode: bool,
) -> None:
    """Start the server and run until SIGTERM or Ctrl-C (then drain, sync and close).

    The first start makes the server's operator identity (its token in
    DATA_DIR/server/operator.token); every start saves the operator's token in your CLI
    settings for the server's URL, so you may deploy at once and grant others the right
    (`grant deploy IDENTITY`).

    Example: cosmictron-cli start --listen 127.0.0.1:3000 --data-dir ./data
    """
    from pathlib import Path

    from cosmictron.cli.durability_line import durability_line
    from cosmictron.cli.rights import save_operator_token
    from cosmictron.server import serve

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {listen!r}", param_hint="--listen")
    pg_address = None
    if pg_listen:
        pg_host, _, pg_port = pg_listen.rpartition(":")
        if not pg_host or not pg_port.isdigit() or int(pg_port) > 65535:
            raise click.BadParameter(
                f"expected HOST:PORT, got {pg_listen!r}", param_hint="--pg-listen"
            )
        pg_address = (pg_host, int(pg_port))
    durability = durability_line(profile, os.environ)  # a bad setting stops us before binding
    cluster = None
    if cluster_urls:
        from cosmictron.cluster.node import ClusterNode, node_id_default
        from cosmictron.errors import ClusterUnavailable, ConfigError

        try:
            cluster = ClusterNode(cluster_urls, node_id or node_id_default()).connect()
        except (ClusterUnavailable, ConfigError) as exc:
            raise click.ClickException(str(exc)) from None
        except ImportError:
            raise click.ClickException(
                "--cluster needs the cluster extra: pip install 'cosmictron[cluster]'"
            ) from None

    operators: list[str] = []

    def startup_lines(url: str, operator: Identity, token: str) -> str:
        operators.append(operator.hex())
        return save_operator_token(url, operator, token) + "\n" + durability

    def announce(event: str, fields: dict[str, Any]) -> None:
        if event == "listening":  # the lines a person reads, as notes beside the fields
            fields.update(operator=operators[-1], notes=str(fields.pop("note")).split("\n"))
        click.echo(json.dumps({"event": event, **fields}))
        sys.stdout.flush()

    directory = Path(data_dir)
    existed = directory.exists()
    try:
        serve(
            host,
            int(port),
            directory,
            profile,
            on_listening=startup_lines,
            announce=announce if json_mode else None,
            open_sandboxed_deploys=open_sandboxed_deploys,
            pg_listen=pg_address,
            cluster=cluster,
        )
    except OSError as exc:
        if exc.errno not in BIND_ERRORS:
            raise
        if not existed:  # a failed start leaves nothing behind
            shutil.rmtree(directory, ignore_errors=True)
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {BIND_ERRORS[exc.errno]}"
        ) from None


BIND_ERRORS = {
    errno.EADDRINUSE: "the address is in use (is a server running there already?); "
    "choose another port with --listen HOST:PORT, or --listen HOST:0 for a free one",
    errno.EADDRNOTAVAIL: "this machine has no such address; "
    "use --listen 127.0.0.1:PORT, or 0.0.0.0:PORT for every address",
    errno.EACCES: "permission denied (ports below 1024 need privileges); "
    "choose a port above 1023 with --listen HOST:PORT",
}
"""Why ``start`` could not bind, and what to do about it, by ``errno``."""


@cli.command("local-call")
@click.argument("data_dir", type=click.Path(file_okay=False))
@click.argument("reducer", type=nametypes.REDUCER)
@click.argument("args", nargs=-1)
@click.option(
    "--module",
    "module_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Module to create the database with (needed only the first time).",
)
@click.option("--json", "json_mode", is_flag=True, help="Print JSON for programs.")
def local_call(
    data_dir: str, reducer: str, args: tuple[str, ...], module_path: str | None, json_mode: bool
) -> None:
    """Call REDUCER in the database stored in DATA_DIR, without a server.

    Each ARG is read as JSON when it parses and as text otherwise, as in `call` (see
    `call --help`: '"2024"' sends the text 2024). Prints the return value and the
    transaction offset, as `call` does.

    Example: cosmictron-cli local-call ./data run_agent "Summarise the report"
    """
    from cosmictron.cli.data import parse_argument, quoting_hint
    from cosmictron.host import Database  # the whole engine: imported by this command only

    values = [parse_argument(arg) for arg in args]
    with Database.open(data_dir, module_path) as database:
        try:
            outcome = database.execute_reducer(reducer, values)
        except InvalidRequest as exc:
            hint = quoting_hint(args, values, str(exc))
            if hint is None:
                raise
            raise InvalidRequest(f"{exc} ({hint})") from None
    reply = {"return_value": _jsonable(outcome.return_value), "tx_offset": outcome.tx_offset}
    if json_mode:
        click.echo(json.dumps(reply))
    else:
        click.echo(f"return_value: {json.dumps(reply['return_value'])}")
        click.echo(f"tx_offset: {reply['tx_offset']}")


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


def one_line(message: str) -> str:
    """A message as one line: a server's list ("...:\n  - a\n  - b") becomes "...: a; b"."""
    lines = [line.strip().removeprefix("- ") for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return message.strip()
    head, items = lines[0], lines[1:]
    return f"{head} {'; '.join(items)}" if head.endswith(":") else "; ".join(lines)


def main() -> None:
    """Run the CLI; turn every error into one line on stderr and an exit code."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as abort:
        interrupted = isinstance(abort.__cause__ or abort.__context__, KeyboardInterrupt)
        click.echo("error: interrupted" if interrupted else "error: aborted", err=True)
        sys.exit(EXIT_INTERRUPTED if interrupted else EXIT_FAILED)
    except click.UsageError as error:
        context = error.ctx
        hint = f" (see: {context.command_path} --help)" if context is not None else ""
        click.echo(f"error: {error.format_message()}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as error:
        click.echo(f"error: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except ClientError as error:
        trace = getattr(error, "traceback", None)
        click.echo(render_error(one_line(str(error)), trace), err=True)
        sys.exit(error.exit_code)
    except CosmictronError as error:
        click.echo(render_error(one_line(str(error)), error.traceback), err=True)
        sys.exit(EXIT_FAILED)
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        click.echo(f"error: {error.strerror or error}{where}", err=True)
        sys.exit(EXIT_FAILED)
    except Exception as error:
        if os.environ.get("COSMICTRON_DEBUG"):
            raise
        name = type(error).__name__
        click.echo(f"error: a bug in cosmictron-cli, please report it: {name}: {error}", err=True)
        sys.exit(EXIT_BUG)
