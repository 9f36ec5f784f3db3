"""SQLite's JSON functions over text values: parse, follow a path, convert back.

Kept apart from ``functions.py`` (which registers them) because JSON paths and the
mapping between JSON and SQL values are a small language of their own. As in SQLite:
a path is ``$`` followed by ``.key``, ``."quoted key"``, ``[n]`` or ``[#-n]`` (n from
the end); JSON ``null`` is SQL NULL, ``true``/``false`` are 1 and 0, numbers are
integers or reals, strings are text, and arrays and objects are their JSON text
(minified). Malformed JSON or a malformed path is a ``SqlError`` (SQLite raises too);
a path that leads nowhere is NULL. Numbers inside returned JSON text are written as
Python writes them (SQLite copies their original text: ``1e2`` stays ``1e2`` there).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from cosmictron.errors import SqlError

_MISSING = object()
_STEP = re.compile(r'\.(?:"((?:[^"\\]|\\.)*)"|([^.\[]+))|\[(#-)?(\d+)\]|\[#\]')


@lru_cache(maxsize=256)
def parse_path(path: str) -> tuple[tuple[str, Any], ...]:
    """A JSON path as steps: ``("key", name)``, ``("index", n)`` or ``("from_end", n)``.

    >>> parse_path('$.a[2]."b c"[#-1]')
    (('key', 'a'), ('index', 2), ('key', 'b c'), ('from_end', 1))
    """
    if not path.startswith("$"):
        raise SqlError(f"bad JSON path: {path!r} (a path starts with $)")
    steps: list[tuple[str, Any]] = []
    position = 1
    while position < len(path):
        found = _STEP.match(path, position)
        if found is None:
            raise SqlError(f"bad JSON path: {path!r}")
        quoted, bare, from_end, number = found.groups()
        if quoted is not None:
            steps.append(("key", quoted))
        elif bare is not None:
            steps.append(("key", bare))
        elif number is not None:
            steps.append(("from_end" if from_end else "index", int(number)))
        else:
            steps.append(("from_end", 0))
        position = found.end()
    return tuple(steps)


@lru_cache(maxsize=1024)
def _parse_cached(text: str) -> Any:
    return json.loads(text)


def parse_json(text: Any) -> Any:
    """The JSON value of ``text``, or a ``SqlError`` naming malformed JSON."""
    try:
        return _parse_cached(text if isinstance(text, str) else str(text))
    except (ValueError, RecursionError):
        raise SqlError("malformed JSON") from None


def follow(value: Any, path: str) -> Any:
    """The part of ``value`` at ``path`` (``_MISSING`` if there is none)."""
    for kind, step in parse_path(path):
        if kind == "key":
            if not isinstance(value, dict) or step not in value:
                return _MISSING
            value = value[step]
        else:
            if not isinstance(value, list):
                return _MISSING
            index = step if kind == "index" else len(value) - step
            if not 0 <= index < len(value):
                return _MISSING
            value = value[index]
    return value


def json_text(value: Any) -> str:
    """``value`` as minified JSON text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sql_value(value: Any) -> Any:
    """A JSON value as SQLite returns it from ``json_extract`` and ``->>``."""
    if value is _MISSING or value is None:
        return None
    if value is True:
        return 1
    if value is False:
        return 0
    if isinstance(value, dict | list):
        return json_text(value)
    return value


def json_extract(document: Any, *paths: Any) -> Any:
    """``json_extract(json, path, ...)``: one path gives its SQL value, several a JSON
    array of their values."""
    value = parse_json(document)
    if len(paths) == 1:
        return sql_value(follow(value, paths[0]))
    found = [follow(value, path) for path in paths]
    return json_text([None if part is _MISSING else part for part in found])


def json_arrow(document: Any, path: Any) -> Any:
    """``json -> path``: the part as JSON text (NULL where there is none)."""
    found = follow(parse_json(document), path)
    return None if found is _MISSING else json_text(found)


def json_type(document: Any, path: Any = "$") -> Any:
    """``json_type(json[, path])``: null, true, false, integer, real, text, array or
    object; NULL where the path leads nowhere."""
    found = follow(parse_json(document), path)
    if found is _MISSING:
        return None
    if found is None:
        return "null"
    if found is True or found is False:
        return "true" if found else "false"
    if isinstance(found, int):
        return "integer"
    if isinstance(found, float):
        return "real"
    if isinstance(found, str):
        return "text"
    return "array" if isinstance(found, list) else "object"


def json_valid(document: Any) -> bool:
    """``json_valid(x)``: whether ``x`` is well-formed JSON text (NULL is not)."""
    if document is None:
        return False
    try:
        parse_json(document)
    except SqlError:
        return False
    return True


def json_array_length(document: Any, path: Any = "$") -> Any:
    """``json_array_length(json[, path])``: the array's length, 0 if not an array."""
    found = follow(parse_json(document), path)
    if found is _MISSING:
        return None
    return len(found) if isinstance(found, list) else 0
