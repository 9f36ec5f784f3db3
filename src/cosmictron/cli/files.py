"""The files commands write and read: never over an existing file without ``--force``,
and ``-`` for standard output (where a command writes) or standard input (where it reads).

One rule for every command (``export``, ``backup``, ``generate`` write; ``deploy``,
``import``, ``restore`` read), so a user who learnt it once is never surprised: a file
that exists is refused, naming ``--force``, before anything is downloaded or changed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import click

STDIO = "-"
"""The file name that stands for standard output or standard input."""

force_option = click.option(
    "--force", is_flag=True, help="Overwrite the output file if it exists already."
)


def is_stdio(path: Path | str | None) -> bool:
    """Whether ``path`` is ``-``: standard output or standard input."""
    return path is not None and str(path) == STDIO


def refuse_overwrite(path: Path, force: bool) -> None:
    """Raise a usage error if ``path`` exists and ``--force`` was not given.

    Raises:
        click.UsageError: the file exists (exit status 2; nothing was written).
    """
    if not force and not is_stdio(path) and path.exists():
        raise click.UsageError(f"{path} exists already; pass --force to overwrite it")


def stdout_bytes() -> BinaryIO:
    """Standard output, for bytes (an export or a backup written to ``-``)."""
    return sys.stdout.buffer


@contextmanager
def readable(path: Path) -> Iterator[Path]:
    """``path`` itself, or for ``-`` a temporary copy of standard input (removed after).

    Commands that verify, resume or measure their input need a file, so standard input
    is copied to one first.
    """
    if not is_stdio(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="cosmictron-stdin-") as directory:
        copy = Path(directory) / "stdin"
        with copy.open("wb") as file:
            shutil.copyfileobj(sys.stdin.buffer, file)
        yield copy


def write_through(write: Callable[[BinaryIO], Any], target: Path) -> Any:
    """Call ``write(file)`` on ``target.partial`` and rename it to ``target`` once whole
    (or on standard output for ``-``): never half a file under the final name."""
    if is_stdio(target):
        result = write(stdout_bytes())
        sys.stdout.flush()
        return result
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as file:
            result = write(file)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return result
