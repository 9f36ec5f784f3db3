"""``backup`` and ``restore``: move a verified backup archive to and from a server.

Both verify the archive on this machine with the same code the server uses
(``host/backup.py``): ``backup`` before the file takes its final name, so a file named
FILE is always a verified backup, and ``restore`` before uploading, so a damaged file is
refused here, in one line, without a round trip.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from cosmictron.cli import nametypes
from cosmictron.cli.client import quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.cli.files import force_option, is_stdio, readable, refuse_overwrite, stdout_bytes
from cosmictron.cli.output import short
from cosmictron.durability.archive import Manifest
from cosmictron.host.backup import verify_backup


@click.command("backup")
@click.argument("database", type=nametypes.DATABASE)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
@force_option
@server_command
def backup(context: CommandContext, database: str, file: Path, force: bool) -> None:
    """Save a consistent backup of DATABASE (owner only) in FILE, verified.

    The backup holds the state at the last transaction committed when it started; the
    database keeps accepting writes meanwhile. FILE is written only once the download
    has been verified (checksums, and a log that replays to the backup's cut); an
    existing FILE is never overwritten without --force. FILE - writes the verified
    backup to standard output (the summary then goes to standard error).

    Example: cosmictron-cli backup quickstart quickstart.backup
    """
    refuse_overwrite(file, force)
    if is_stdio(file):
        if context.output.json_mode:
            raise click.UsageError("--json and FILE - would both write to standard output")
        with tempfile.TemporaryDirectory(prefix="cosmictron-backup-") as directory:
            staged = Path(directory) / "backup"
            manifest = _download_verified(context, database, staged)
            size = staged.stat().st_size
            with staged.open("rb") as source:
                shutil.copyfileobj(source, stdout_bytes())
            sys.stdout.flush()
        context.output.note(
            f"Backed up {database!r} at tx_offset {manifest.cut_offset} to standard output "
            f"({size} bytes, verified)."
        )
        return
    manifest = _download_verified(context, database, file)
    reply = {
        "database": database,
        "file": str(file),
        **manifest.describe(),
        "file_bytes": file.stat().st_size,
    }
    context.output.document(
        reply,
        lambda console: console.print(
            f"Backed up {database!r} at tx_offset {manifest.cut_offset} into {file} "
            f"({reply['file_bytes']} bytes, verified)."
        ),
    )


def _download_verified(context: CommandContext, database: str, file: Path) -> Manifest:
    """Download DATABASE's backup into ``file.part``, verify it, rename it to ``file``."""
    partial = file.with_name(file.name + ".part")
    try:
        with (
            context.client.open_download(f"/v1/database/{quote(database)}/backup") as (
                headers,
                chunks,
            ),
            open(partial, "wb") as out,
            context.output.progress(f"Downloading {database}", _length(headers)) as advance,
        ):
            for chunk in chunks:
                out.write(chunk)
                advance(len(chunk))
        manifest = verify_backup(partial)
        os.replace(partial, file)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


@click.command("restore")
@click.argument(
    "file", type=click.Path(dir_okay=False, exists=True, path_type=Path, allow_dash=True)
)
@click.argument("database", type=nametypes.DATABASE)
@click.option(
    "--to-offset",
    type=click.IntRange(min=0),
    default=None,
    help="Restore the state after this transaction offset (point in time).",
)
@click.option(
    "--to-time",
    metavar="RFC3339",
    default=None,
    help="Restore the state after the last transaction at or before this time "
    "(e.g. 2026-03-02T12:00:00Z).",
)
@server_command
def restore(
    context: CommandContext, file: Path, database: str, to_offset: int | None, to_time: str | None
) -> None:
    """Create DATABASE from the backup FILE; you own it. The name must be free.

    FILE is verified here first and again by the server (FILE - reads the backup from
    standard input). Without --to-offset or
    --to-time the database is restored as of the backup's cut. An archive carries its
    module's code, so restoring needs the right to deploy (see `grant`).

    Example: cosmictron-cli restore quickstart.backup quickstart-copy --to-offset 120
    """
    if to_offset is not None and to_time is not None:
        raise click.UsageError("give --to-offset or --to-time, not both")
    with readable(file) as source:
        _restore(context, source, database, to_offset, to_time)


def _restore(
    context: CommandContext, file: Path, database: str, to_offset: int | None, to_time: str | None
) -> None:
    manifest = verify_backup(file)
    if context.saved is None:
        saved = context.obtain_identity()
        context.output.note(
            f"No saved identity for {context.url}: obtained {short(saved.identity)} "
            f"and saved it in {context.settings.path}."
        )
    query = ""
    if to_offset is not None:
        query = f"?to_offset={to_offset}"
    elif to_time is not None:
        query = f"?to_time={quote(to_time)}"
    body = file.read_bytes()
    path = f"/v1/database/{quote(database)}/restore{query}"
    with context.output.progress(f"Uploading {file.name}", len(body)) as advance:
        reply = context.client.request("PUT", path, body, "application/x-tar", advance)
    context.output.document(reply, lambda console: _print_restored(console, reply, manifest))


def _print_restored(console: Console, reply: dict[str, Any], manifest: Manifest) -> None:
    console.print(
        f"Restored database {reply['database']!r} at tx_offset {reply['tx_offset']} "
        f"(backup cut {manifest.cut_offset})."
    )
    console.print(f"  identity  {reply['identity']}")
    console.print(f"  owner     {reply['owner']}")


def _length(headers: dict[str, str]) -> int:
    """The announced size of a download (0: unknown, the progress bar just counts)."""
    length = headers.get("Content-Length", "")
    return int(length) if length.isdigit() else 0
