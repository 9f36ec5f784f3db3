"""The user's own code in an exception: the frames of the module, not of Cosmictron.

A reducer's exception passes through a dozen frames of the host before it reaches the
caller; the module's author needs only theirs: file, line, function and the line's text,
as Python prints them. ``user_traceback`` keeps every frame outside the ``cosmictron``
package (the module's, the helpers it imports, the standard library it calls) and drops
ours. A module deployed to a server was compiled under the file name its author gave it
(``app.py``) and has no file on the server's disk under that name, so its lines are read
from the module's source, never from whatever ``app.py`` the server's working directory
may hold; other files' lines come from ``linecache`` as in any traceback.
"""

from __future__ import annotations

import linecache
import os
import traceback
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = str(Path(__file__).resolve().parent.parent) + os.sep
"""Frames in files under this directory are Cosmictron's, left out of users' tracebacks."""

FRAMES_MAX = 30
"""The innermost frames kept: a runaway recursion must not make a megabyte error."""


def user_traceback(error: BaseException, sources: Mapping[str, bytes]) -> str | None:
    """``Traceback``-style lines for ``error``'s frames in the user's code, or None.

    Args:
        error: the exception, with its ``__traceback__``.
        sources: module file name -> its source, for files not on this machine's disk.
    """
    lines: list[str] = []
    frames = [
        (frame.f_code, line)
        for frame, line in traceback.walk_tb(error.__traceback__)
        if not _is_ours(frame.f_code.co_filename)
    ]
    for code, line in frames[-FRAMES_MAX:]:
        lines.append(f'  File "{code.co_filename}", line {line}, in {code.co_name}')
        text = source_line(code.co_filename, line, sources)
        if text:
            lines.append(f"    {text}")
    return "\n".join(lines) if lines else None


def load_traceback(error: BaseException, filename: str, source: bytes) -> str | None:
    """Where a module failed to load: a ``SyntaxError``'s line with its caret, or the
    frames of the module's top-level code (an ``ImportError``, a ``NameError``...)."""
    if isinstance(error, SyntaxError):
        shown = traceback.format_exception_only(type(error), error)
        return "".join(shown[:-1]).rstrip("\n") or None  # the last line is the message
    return user_traceback(error, {filename: source})


def source_line(filename: str, line: int, sources: Mapping[str, bytes]) -> str:
    """Line ``line`` (1-based) of ``filename``, stripped; "" when unknown."""
    source = sources.get(filename)
    if source is None:
        return linecache.getline(filename, line).strip()
    lines = source.decode("utf-8", "replace").splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _is_ours(filename: str) -> bool:
    return filename.startswith(PACKAGE_DIR) or filename.startswith("<frozen ")
