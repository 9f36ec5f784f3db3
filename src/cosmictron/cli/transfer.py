"""Moving data in and out: ``import`` (a CSV file, in resumable batches) and ``export``.

``import`` cuts the file into batches of whole CSV records (a quoted field may span
lines), sends each with the header through ``POST .../bulk_insert/{table}`` and records
each acknowledged batch in a state file beside the CSV, so an interrupted import goes on
where it stopped; ``importstate.py`` explains the file and why no row is loaded twice.
``export`` streams ``GET .../export/{table}`` into files (docs/guide/import-export.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import click
from rich.console import Console

from cosmictron.cli import nametypes
from cosmictron.cli.client import ServerError, quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.cli.files import force_option, is_stdio, readable, refuse_overwrite, write_through
from cosmictron.cli.importstate import ImportState, prefix_digest, state_path

SERVER_LINE = re.compile(r"^line (\d+)")


def read_batches(
    file: BinaryIO, batch_rows: int, lines_before: int
) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(bytes, first line, last line)`` for each run of ``batch_rows`` records.

    ``lines_before`` lines of the file were read already. A record ends at a line end
    outside quotes: the count of ``"`` so far is even (an escaped quote is two of them,
    so it never changes the parity).
    """
    lines: list[bytes] = []
    records = 0
    quotes_open = False
    line = lines_before
    start = line + 1
    for text in file:
        lines.append(text)
        line += 1
        if text.count(b'"') % 2:
            quotes_open = not quotes_open
        if quotes_open:
            continue
        records += 1
        if records == batch_rows:
            yield b"".join(lines), start, line
            lines, records, start = [], 0, line + 1
    if lines:
        yield b"".join(lines), start, line


@click.command("import")
@click.argument("database", type=nametypes.DATABASE)
@click.argument("table", type=nametypes.TABLE)
@click.argument(
    "csv_file", type=click.Path(dir_okay=False, exists=True, path_type=Path, allow_dash=True)
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Rows per batch; each batch is one transaction.",
)
@click.option("--restart", is_flag=True, help="Ignore a saved state file; start from row 1.")
@server_command
def import_csv(
    context: CommandContext,
    database: str,
    table: str,
    csv_file: Path,
    batch_rows: int,
    restart: bool,
) -> None:
    """Load CSV_FILE (a header of column names, then rows) into TABLE of DATABASE.

    The file is sent in batches (owner only); each acknowledged batch is recorded in
    CSV_FILE.cosmictron-import.json, so running the same command again after an
    interruption resumes after the last committed batch without loading any row twice.
    A bad row refuses its batch whole and stops the import, naming its line in the file;
    batches before it stay committed, and after fixing the row the same command resumes.
    Cell forms: docs/guide/import-export.md (SpacetimeDB CSV dumps load as they are).
    CSV_FILE - reads standard input (such an import cannot resume: it keeps no state).

    Example: cosmictron-cli import shop item items.csv --batch-rows 50000
    """
    with readable(csv_file) as source:
        shown = "standard input" if is_stdio(csv_file) else str(csv_file)
        stdin = is_stdio(csv_file)
        _import(context, database, table, source, batch_rows, restart or stdin, shown)


def _import(
    context: CommandContext,
    database: str,
    table: str,
    csv_file: Path,
    batch_rows: int,
    restart: bool,
    shown: str,
) -> None:
    path = state_path(csv_file)
    state = _resume_or_start(context, database, table, csv_file, batch_rows, restart, path)
    url_path = f"/v1/database/{quote(database)}/bulk_insert/{quote(table)}"
    total_bytes = csv_file.stat().st_size
    resumed_at = state.lines_committed + 1
    sent = already = 0
    digest = prefix_digest(csv_file, state.bytes_committed)
    with csv_file.open("rb") as file:
        header = file.read(state.header_bytes)
        file.seek(state.bytes_committed)
        done = state.bytes_committed
        description = f"Importing {Path(shown).name}"
        with context.output.progress(description, total_bytes, done) as advance:
            for body, start, end in read_batches(file, state.batch_rows, state.lines_committed):
                key = f"{hashlib.sha256(body).hexdigest()[:32]}:{start}"
                reply = _send(context, url_path, header + body, key, start)
                digest.update(body)
                done += len(body)
                batch = {
                    "start_line": start,
                    "end_line": end,
                    "rows": reply["rows_inserted"],
                    "tx_offset": reply["tx_offset"],
                    "key": key,
                }
                state.commit(batch, done, digest.hexdigest())
                state.save(path)
                sent += 1
                already += bool(reply.get("already_applied"))
                advance(len(body))
                if not context.output.shows_progress_bar:
                    context.output.note(
                        f"committed lines {start}-{end} ({reply['rows_inserted']} rows, "
                        f"tx_offset {reply['tx_offset']})"
                        + (", already applied earlier" if reply.get("already_applied") else "")
                    )
    state.complete = True
    state.save(path)
    summary = {
        "database": database,
        "table": table,
        "file": shown,
        "rows_committed": state.rows_committed,
        "batches_sent": sent,
        "batches_already_applied": already,
        "resumed_from_line": resumed_at if resumed_at > 2 else None,
        "tx_offset": state.batches[-1]["tx_offset"] if state.batches else None,
        "state_file": None if shown == "standard input" else str(path),
    }
    context.output.document(summary, lambda console: _print_import(console, summary))


def _resume_or_start(
    context: CommandContext,
    database: str,
    table: str,
    csv_file: Path,
    batch_rows: int,
    restart: bool,
    path: Path,
) -> ImportState:
    """The saved state when it is this import's and the loaded part is unchanged."""
    if path.exists() and not restart:
        state = ImportState.load(path)
        mine = (state.server, state.database, state.table, state.file)
        wanted = (context.url, database, table, str(csv_file.resolve()))
        if mine != wanted:
            raise click.UsageError(
                f"{path} records an import of {state.file} into {state.database}.{state.table} "
                f"on {state.server}; pass --restart to start this one from row 1"
            )
        if prefix_digest(csv_file, state.bytes_committed).hexdigest() != state.prefix_sha256:
            raise click.UsageError(
                f"the first {state.bytes_committed} bytes of {csv_file} changed since they were "
                f"imported; pass --restart to import the file from row 1"
            )
        if state.complete:
            context.output.note(f"{csv_file} was imported already ({path}); nothing to do")
        elif state.batches:
            context.output.note(
                f"resuming after line {state.lines_committed} "
                f"({state.rows_committed} rows committed, from {path})"
            )
        if state.batch_rows != batch_rows:
            context.output.note(f"keeping the batch size of the first run ({state.batch_rows})")
        return state
    with csv_file.open("rb") as file:
        header = file.readline()
    state = ImportState(
        server=context.url,
        database=database,
        table=table,
        file=str(csv_file.resolve()),
        batch_rows=batch_rows,
        header_bytes=len(header),
        bytes_committed=len(header),
        prefix_sha256=hashlib.sha256(header).hexdigest(),
    )
    state.save(path)
    return state


def _send(context: CommandContext, url_path: str, body: bytes, key: str, start: int) -> Any:
    """One batch; a server error naming a batch line is rewritten to name the file line."""
    try:
        return context.client.request(
            "POST", url_path, body, "text/csv", headers={"Idempotency-Key": key}
        )
    except ServerError as exc:
        message = str(exc)
        found = SERVER_LINE.match(message)
        if found and int(found[1]) > 1:  # line 1 of a batch is the header: same in the file
            line = start + int(found[1]) - 2
            message = f"line {line}{message[found.end() :]}"
        note = f" (nothing from line {start} on was loaded; fix it and run the same command)"
        raise ServerError(exc.status, exc.code, message + note) from None


def _print_import(console: Console, summary: dict[str, Any]) -> None:
    console.print(
        f"Imported {summary['file']} into {summary['database']}.{summary['table']}: "
        f"{summary['rows_committed']} rows in all (tx_offset {summary['tx_offset']})."
    )
    if summary["resumed_from_line"]:
        console.print(f"  resumed from line {summary['resumed_from_line']}")
    if summary["batches_already_applied"]:
        console.print(
            f"  {summary['batches_already_applied']} batch(es) had been applied already "
            f"(their reply was lost); not loaded twice"
        )


@click.command("export")
@click.argument("database", type=nametypes.DATABASE)
@click.argument("table", required=False, type=nametypes.TABLE)
@click.option(
    "--format",
    "form",
    type=click.Choice(["csv", "ndjson"]),
    default="csv",
    show_default=True,
    help="CSV with a header row (what import reads) or one JSON object per line.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, allow_dash=True),
    default=None,
    help="A file for one table [default: ./TABLE.csv], - for standard output; a "
    "directory for all tables [default: ./DATABASE-export/].",
)
@force_option
@server_command
def export(
    context: CommandContext,
    database: str,
    table: str | None,
    form: str,
    out: Path | None,
    force: bool,
) -> None:
    """Write TABLE of DATABASE (or every table) to CSV or NDJSON files.

    Tables are streamed from the server, whatever their size. Private tables need the
    owner's identity; exporting every table as someone else leaves them out. An
    existing file is never overwritten without --force; --out - writes the table to
    standard output (the summary then goes to standard error).

    Example: cosmictron-cli export shop item --out items.csv
    """
    to_stdout = is_stdio(out)
    if to_stdout and table is None:
        raise click.UsageError("--out - needs a TABLE: every table is written to a directory")
    if to_stdout and context.output.json_mode:
        raise click.UsageError("--json and --out - would both write to standard output")
    schema = context.client.request("GET", f"/v1/database/{quote(database)}/schema")
    if table is not None:
        targets = [(table, out or Path(f"{table}.{form}"))]
    else:
        # The schema lists private tables to their owner only, so this is what we may read.
        directory = out or Path(f"{database}-export")
        targets = [(t["name"], directory / f"{t['name']}.{form}") for t in schema["tables"]]
    for _, target in targets:  # every refusal before the first byte is written
        refuse_overwrite(target, force)
    if table is None:
        directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, target in targets:
        path = f"/v1/database/{quote(database)}/export/{quote(name)}?format={form}"
        headers = write_through(partial(_download, context, path, f"Exporting {name}"), target)
        offset = headers.get("X-Cosmictron-Tx-Offset")
        shown = "standard output" if to_stdout else str(target)
        written.append({"table": name, "file": shown, "tx_offset": offset})
    summary = {"database": database, "format": form, "tables": written}

    def human(console: Console) -> None:
        for entry in written:
            line = (
                f"Exported {database}.{entry['table']} to {entry['file']} "
                f"(tx_offset {entry['tx_offset']})."
            )
            if to_stdout:
                context.output.note(line)
            else:
                console.print(line)

    context.output.document(summary, human)


def _download(context: CommandContext, path: str, description: str, file: BinaryIO) -> Any:
    """Stream one export into ``file`` with a progress bar; returns the reply's headers."""
    with context.client.open_download(path) as (headers, chunks):
        length = headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        with context.output.progress(description, total) as advance:
            for chunk in chunks:
                file.write(chunk)
                advance(len(chunk))
    return headers
