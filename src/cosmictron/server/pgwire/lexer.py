"""Splitting a query string into statements and renaming ``$n`` to ``:pn``, outside
quotes and comments.

A simple Query message may hold several statements separated by ``;``; the engine
takes one at a time. PostgreSQL's positional parameters ``$1`` become the engine's
named ``:p1`` so the statement cache keys on the text with its placeholders, as for
any parametrised query. Both scans skip single-quoted strings (with ``''`` inside),
``E'...'`` strings with backslash escapes, double-quoted identifiers, dollar-quoted
strings and ``--`` / ``/* */`` comments.
"""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_PARAM = re.compile(r"\$(\d+)")


def _skip(text: str, at: int) -> int:
    """If a quoted or comment span starts at ``at``, the index after it; else ``at``."""
    char = text[at]
    if char == "'":
        escapes = at > 0 and text[at - 1] in "eE" and (at < 2 or not text[at - 2].isalnum())
        i = at + 1
        while i < len(text):
            if escapes and text[i] == "\\":
                i += 2
                continue
            if text[i] == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        return len(text)
    if char == '"':
        end = text.find('"', at + 1)
        while end >= 0 and end + 1 < len(text) and text[end + 1] == '"':
            end = text.find('"', end + 2)
        return len(text) if end < 0 else end + 1
    if text.startswith("--", at):
        end = text.find("\n", at)
        return len(text) if end < 0 else end + 1
    if text.startswith("/*", at):
        end = text.find("*/", at + 2)
        return len(text) if end < 0 else end + 2
    if char == "$" and (at == 0 or not (text[at - 1].isalnum() or text[at - 1] == "_")):
        tag = _DOLLAR_TAG.match(text, at)
        if tag is not None:
            end = text.find(tag.group(0), tag.end())
            return len(text) if end < 0 else end + len(tag.group(0))
    return at


def split_statements(text: str) -> list[str]:
    """The statements of a query string, each without its ``;``; blank ones dropped."""
    statements = []
    start = 0
    i = 0
    while i < len(text):
        after = _skip(text, i)
        if after != i:
            i = after
            continue
        if text[i] == ";":
            statements.append(text[start:i])
            start = i + 1
        i += 1
    statements.append(text[start:])
    return [s for s in statements if strip_comments(s).strip()]


def strip_comments(text: str) -> str:
    """``text`` without its comments (quoted text kept)."""
    out = []
    i = 0
    last = 0
    while i < len(text):
        after = _skip(text, i)
        if after != i:
            if text.startswith("--", i) or text.startswith("/*", i):
                out.append(text[last:i])
                out.append(" ")
                last = after
            i = after
            continue
        i += 1
    out.append(text[last:])
    return "".join(out)


def rename_params(text: str) -> tuple[str, int]:
    """``text`` with ``$n`` as ``:pn``, and the highest n found (0: none)."""
    out = []
    i = 0
    last = 0
    highest = 0
    while i < len(text):
        after = _skip(text, i)
        if after != i:
            i = after
            continue
        if text[i] == "$":
            found = _PARAM.match(text, i)
            if found is not None:
                number = int(found.group(1))
                highest = max(highest, number)
                out.append(text[last:i])
                out.append(f":p{number}")
                last = i = found.end()
                continue
        i += 1
    out.append(text[last:])
    return "".join(out), highest
