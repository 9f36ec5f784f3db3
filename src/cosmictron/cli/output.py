"""What the commands print: tables for people, one JSON document (or NDJSON) for programs.

Every command builds a JSON-able document first and hands it to ``Output.document``
with a function that renders it for people, so ``--json`` and the human form can never
disagree about the facts. Rich is used with markup off: row values and error messages
are user data, and a ``[bold]`` inside a task title must print as written.
Notes that are not the result ("obtained a new identity…") go to stderr, so stdout
stays one JSON document under ``--json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

WIDE_COLUMNS = 160
"""Width used when stdout is not a terminal, so piped tables are not squeezed to 80."""


class Output:
    """The one place a command writes its result."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        width = None if sys.stdout.isatty() else WIDE_COLUMNS
        self.console = Console(markup=False, highlight=False, emoji=False, width=width)

    def document(self, document: Any, human: Callable[[Console], None]) -> None:
        """Print ``document`` as JSON, or call ``human`` to render it for a person."""
        if self.json_mode:
            click.echo(json.dumps(document, indent=2))
        else:
            human(self.console)

    def line(self, document: Any, human: Callable[[Console], None]) -> None:
        """One item of a stream: an NDJSON line, or ``human`` for a person; flushed now."""
        if self.json_mode:
            click.echo(json.dumps(document, separators=(",", ":")))
        else:
            human(self.console)
        sys.stdout.flush()

    @property
    def shows_progress_bar(self) -> bool:
        """Whether ``progress`` draws a bar (a person at a terminal, not ``--json``)."""
        return not self.json_mode and sys.stderr.isatty()

    @staticmethod
    def note(message: str) -> None:
        """A remark about the work, not its result: stderr, so stdout stays machine-clean."""
        click.echo(message, err=True)

    @contextmanager
    def progress(
        self, description: str, total_bytes: int | None, done_bytes: int = 0
    ) -> Iterator[Callable[[int], None]]:
        """A byte progress bar on stderr, shown only to a person at a terminal.

        ``done_bytes`` starts the bar part-way (a resumed import); a ``total_bytes`` of
        None (a streamed download of unknown size) counts bytes without a percentage.
        """
        if not self.shows_progress_bar:
            yield lambda _: None
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
        )
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total_bytes, completed=done_bytes)
            yield lambda count: bar.advance(task, count)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> Table:
    """A rich table; cells are shown as JSON scalars (``null``, ``true``) or text."""
    grid = Table(*columns, title=title, title_justify="left", show_lines=False)
    for row in rows:
        grid.add_row(*(cell(value) for value in row))
    return grid


def cell(value: Any) -> str:
    """One value as people read it: text as is, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def short(identity: str, length: int = 16) -> str:
    """An identity's first hex digits: enough to tell two apart in a table."""
    return identity if len(identity) <= length else identity[:length] + "…"
