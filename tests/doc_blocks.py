"""Reading the documentation's fenced blocks, and comparing shown output with real output.

Shared by ``tests/test_docs.py`` (Python examples and their ``output`` blocks) and
``tests/test_transcripts.py`` (```` ```console ```` transcripts run through the real CLI).

Shown output is compared line by line after a small normalisation of what was really
printed (``normalise``), with one wildcard in what the page shows:

- ``…`` inside a line matches any text within that line (an identity, a time);
- a line that is only ``…`` matches any number of lines, none included.

When a page's output is out of date, the failure prints a unified diff (page lines
``-``, real output ``+``). Run the same test with ``COSMICTRON_UPDATE_DOCS=1`` to write
the real output into the page instead: lines that still match (wildcards included) are
kept as written, the others are replaced, so reviewing ``git diff docs/`` shows exactly
what changed.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
ELLIPSIS = "…"
EXIT = re.compile(r"^\[exit (?P<code>\d+)\]$")
UPDATE = os.environ.get("COSMICTRON_UPDATE_DOCS") == "1"


def pages() -> list[str]:
    """README.md and every page under docs/, relative to the repository root."""
    return ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]


@dataclass
class Block:
    """One fenced block: its info words, body, and where the body lies in the page."""

    words: list[str]
    body: str
    start: int  # offset of the body's first character
    line: int  # page line of the body's first line


def blocks(text: str) -> list[Block]:
    """Every fenced block of a page, in order."""
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("body")) + 1
        found.append(Block(match["info"].split(), match["body"], match.start("body"), line))
    return found


# -- comparing ---------------------------------------------------------------------------


@cache
def _pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in expected.split(ELLIPSIS)))


def line_matches(expected: str, actual: str) -> bool:
    if ELLIPSIS not in expected:
        return expected == actual
    return _pattern(expected).fullmatch(actual) is not None


def lines_match(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """Whether ``actual`` fits ``expected``, wildcards included (see the module docstring)."""

    @cache
    def fits(i: int, j: int) -> bool:
        if i == len(expected):
            return j == len(actual)
        if expected[i] == ELLIPSIS:
            return any(fits(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and line_matches(expected[i], actual[j]) and fits(i + 1, j + 1)

    return fits(0, 0)


def updated(expected: Sequence[str], actual: Sequence[str]) -> list[str]:
    """The lines to write in place of ``expected``: the actual ones, except that a shown
    line still matching its actual counterpart (same position, or any lines for a lone
    ``…`` followed by a matching line) is kept as written."""
    if lines_match(expected, actual):
        return list(expected)
    kept = []
    for index, line in enumerate(actual):
        shown = expected[index] if index < len(expected) else None
        kept.append(shown if shown is not None and line_matches(shown, line) else line)
    return kept


def normalise(output: str, replacements: Sequence[tuple[str, str]] = ()) -> list[str]:
    """Real output as the page shows it: ``replacements`` applied (a port, a temporary
    directory), trailing spaces cut, trailing blank lines dropped."""
    for old, new in replacements:
        output = output.replace(old, new)
    lines = [line.rstrip() for line in output.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def difference(where: str, expected: Sequence[str], actual: Sequence[str]) -> str:
    diff = difflib.unified_diff(
        list(expected), list(actual), f"{where} (the page)", "(real output)", lineterm=""
    )
    return "\n".join(diff)


HOW_TO_UPDATE = (
    "if the new output is right, rerun this test with COSMICTRON_UPDATE_DOCS=1 to write it "
    "into the page (lines that still match stay as written), then review `git diff`"
)


# -- writing pages back ------------------------------------------------------------------


@dataclass
class PageEdits:
    """Replacements of spans of one page, applied together (``COSMICTRON_UPDATE_DOCS``)."""

    page: str
    edits: list[tuple[int, int, str]] = field(default_factory=list)

    def replace(self, start: int, end: int, lines: Sequence[str]) -> None:
        self.edits.append((start, end, "".join(line + "\n" for line in lines)))

    def write(self) -> None:
        if not self.edits:
            return
        path = ROOT / self.page
        text = path.read_text()
        for start, end, new in sorted(self.edits, reverse=True):
            text = text[:start] + new + text[end:]
        path.write_text(text)
