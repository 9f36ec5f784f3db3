"""Read, run and rewrite sqllogictest-style ``.slt`` files; ``slt/README.md`` is the format.

A file is a sequence of blocks separated by blank lines. A block holding a ``query`` or
``statement`` line is a record; any other block (comments) is kept as it is. The runner
is engine-neutral: an ``Engine`` is a name (for ``skipif``/``onlyif``), a function that
runs SQL and returns ``(columns, rows)``, and the exception type that counts as a clean
SQL error. ``tests/query/test_slt.py`` runs every record on SQLite and on Cosmictron;
``slt/generate.py`` rewrites the expected rows from SQLite.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEPARATOR = "----"
NULL = "NULL"
EMPTY = "(empty)"
TYPE_LETTERS = frozenset("IRT")
FLOAT_FORMAT = ".6g"
"""Floats are compared at six significant digits, so engines may differ in the last bits."""

Execute = Callable[[str], tuple[Sequence[str], Sequence[Sequence[Any]]]]


class SltSyntaxError(ValueError):
    """A ``.slt`` file is malformed; the message names the file and line."""


class ValueTypeError(TypeError):
    """An engine returned a Python value that does not fit the record's column type."""


@dataclass
class Record:
    """One ``query`` or ``statement error`` record and where it sits in its file."""

    path: str
    line: int
    """1-based line of the ``query``/``statement`` header."""
    kind: str
    """``query`` or ``error``."""
    sql: str
    preamble: list[str]
    """The block's lines up to and including the SQL: comments, conditions, header."""
    types: str = ""
    sort: str = "nosort"
    error: str = ""
    """For ``statement error``: a substring the error message must contain (any case)."""
    skip: set[str] = field(default_factory=set)
    only: set[str] = field(default_factory=set)
    expected: list[str] = field(default_factory=list)

    def runs_on(self, engine: str) -> bool:
        return engine not in self.skip and (not self.only or engine in self.only)

    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Engine:
    name: str
    execute: Execute
    error_type: type[BaseException] | tuple[type[BaseException], ...]
    """Exceptions that are a proper SQL error; anything else fails the record."""
    bug_type: type[BaseException] | tuple[type[BaseException], ...] = ()
    """Subclasses of ``error_type`` that still mean a bug (an internal error)."""


Block = Record | list[str]


def parse_file(path: Path) -> list[Block]:
    """The blocks of ``path``: records, and comment blocks as lists of lines."""
    return parse(path.read_text(), str(path))


def parse(text: str, path: str = "<string>") -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    start = 0
    while start < len(lines):
        if not lines[start].strip():
            start += 1
            continue
        end = start
        while end < len(lines) and lines[end].strip():
            end += 1
        blocks.append(_parse_block(lines[start:end], start + 1, path))
        start = end
    return blocks


def records(blocks: Iterable[Block]) -> list[Record]:
    return [block for block in blocks if isinstance(block, Record)]


def _parse_block(lines: list[str], first_line: int, path: str) -> Block:
    skip: set[str] = set()
    only: set[str] = set()
    for offset, line in enumerate(lines):
        words = line.split()
        where = f"{path}:{first_line + offset}"
        if line.startswith("#"):
            continue
        if words[0] in ("skipif", "onlyif") and len(words) == 2:
            (skip if words[0] == "skipif" else only).add(words[1])
            continue
        if words[0] == "query":
            return _parse_query(lines, offset, first_line, path, skip, only)
        if words[:2] == ["statement", "error"]:
            sql = "\n".join(lines[offset + 1 :])
            if not sql.strip() or SEPARATOR in lines[offset + 1 :]:
                raise SltSyntaxError(f"{where}: 'statement error' needs SQL and no '----'")
            return Record(
                path,
                first_line + offset,
                "error",
                sql,
                lines,
                error=line.split(None, 2)[2].strip() if len(words) > 2 else "",
                skip=skip,
                only=only,
            )
        raise SltSyntaxError(f"{where}: expected 'query', 'statement error' or '#', got {line!r}")
    return lines


def _parse_query(
    lines: list[str], offset: int, first_line: int, path: str, skip: set[str], only: set[str]
) -> Record:
    where = f"{path}:{first_line + offset}"
    words = lines[offset].split()
    if len(words) < 2 or not set(words[1]) <= TYPE_LETTERS:
        raise SltSyntaxError(f"{where}: 'query' needs column types made of I, R and T")
    sort = words[2] if len(words) > 2 else "nosort"
    if sort not in ("nosort", "rowsort"):
        raise SltSyntaxError(f"{where}: sort mode must be nosort or rowsort, got {sort!r}")
    try:
        separator = lines.index(SEPARATOR, offset)
    except ValueError:
        raise SltSyntaxError(f"{where}: the query has no '----' line") from None
    sql = "\n".join(lines[offset + 1 : separator])
    if not sql.strip():
        raise SltSyntaxError(f"{where}: the query has no SQL")
    return Record(
        path,
        first_line + offset,
        "query",
        sql,
        lines[: separator + 1],
        types=words[1],
        sort=sort,
        skip=skip,
        only=only,
        expected=lines[separator + 1 :],
    )


def render(blocks: Iterable[Block]) -> str:
    """The file text of ``blocks``; ``parse(render(blocks))`` gives the same blocks."""
    parts = []
    for block in blocks:
        if isinstance(block, Record):
            parts.append("\n".join([*block.preamble, *block.expected]))
        else:
            parts.append("\n".join(block))
    return "\n\n".join(parts) + "\n"


def format_value(value: Any, type_letter: str) -> str:
    """One result value as text. Raises ``ValueTypeError`` when the type does not fit.

    ``I``: int, or bool as 1/0. ``R``: float, at six significant digits. ``T``: str, with
    the empty string as ``(empty)``. NULL (None) is ``NULL`` in every type.
    """
    if value is None:
        return NULL
    if type_letter == "I" and isinstance(value, int):
        return str(int(value))
    if type_letter == "R" and isinstance(value, float):
        text = format(value, FLOAT_FORMAT)
        return "0" if text == "-0" else text
    if type_letter == "T" and isinstance(value, str):
        if value in (NULL, EMPTY) or "\t" in value or "\n" in value:
            raise ValueTypeError(f"the text {value!r} cannot be written in an .slt file")
        return value if value else EMPTY
    raise ValueTypeError(
        f"expected a value of type {type_letter}, got {type(value).__name__} {value!r}"
    )


def format_rows(record: Record, rows: Sequence[Sequence[Any]]) -> list[str]:
    """The rows as the expected section writes them: tab-separated, sorted if rowsort."""
    formatted = []
    for row in rows:
        if len(row) != len(record.types):
            raise ValueTypeError(
                f"a row has {len(row)} values, the record declares {len(record.types)} columns"
            )
        formatted.append([format_value(v, t) for v, t in zip(row, record.types, strict=True)])
    if record.sort == "rowsort":
        formatted.sort()
    return ["\t".join(values) for values in formatted]


def _comparable(record: Record, lines: list[str]) -> list[str]:
    if record.sort == "rowsort":
        return ["\t".join(values) for values in sorted(line.split("\t") for line in lines)]
    return lines


def run_record(record: Record, engine: Engine) -> str | None:
    """Run one record; ``None`` when it passes, else a report of what went wrong."""
    if record.kind == "error":
        return _run_error(record, engine)
    try:
        columns, rows = engine.execute(record.sql)
        if len(columns) != len(record.types):
            raise ValueTypeError(
                f"the result has {len(columns)} columns {tuple(columns)}, "
                f"the record declares {len(record.types)}"
            )
        actual = format_rows(record, rows)
    except Exception as error:
        return _report(record, engine, f"raised {type(error).__name__}: {error}")
    if actual == _comparable(record, record.expected):
        return None
    return _report(record, engine, "returned different rows", actual)


def _run_error(record: Record, engine: Engine) -> str | None:
    try:
        engine.execute(record.sql)
    except engine.error_type as error:
        if engine.bug_type and isinstance(error, engine.bug_type):
            return _report(record, engine, f"raised an internal error: {error!r}")
        if record.error.lower() not in str(error).lower():
            return _report(record, engine, f"raised an error without {record.error!r}: {error}")
        return None
    except Exception as error:
        return _report(record, engine, f"raised {type(error).__name__}, not a SQL error: {error}")
    return _report(record, engine, "succeeded, but the record expects an error")


def _report(record: Record, engine: Engine, problem: str, actual: list[str] | None = None) -> str:
    lines = [f"{record.where()}: {engine.name} {problem}", _indent(record.sql)]
    if record.kind == "query":
        lines += ["expected:", _indent("\n".join(record.expected) or "(no rows)")]
    if actual is not None:
        lines += ["actual:", _indent("\n".join(actual) or "(no rows)")]
    return "\n".join(lines)


def _indent(text: str) -> str:
    return re.sub("^", "    ", text, flags=re.MULTILINE)


def run_file(path: Path, engine: Engine) -> tuple[int, list[str]]:
    """Run every record of ``path`` that applies to ``engine``: (records run, failures)."""
    ran = 0
    failures = []
    for record in records(parse_file(path)):
        if not record.runs_on(engine.name):
            continue
        ran += 1
        failure = run_record(record, engine)
        if failure is not None:
            failures.append(failure)
    return ran, failures


# SQLite, the oracle.

SQLITE_TYPES = {"i64": "INTEGER", "f64": "REAL", "str": "TEXT", "bool": "INTEGER"}


def sqlite_ddl(schema: Any) -> list[str]:
    """``CREATE TABLE``/``CREATE INDEX`` statements for a ``ModuleSchema``'s tables."""
    statements = []
    for table in schema.tables:
        columns = []
        for column in table.columns:
            name = column.type.name
            optional = name.startswith("Optional[")
            base = name[len("Optional[") : -1] if optional else name
            if base not in SQLITE_TYPES:
                raise ValueError(f"column {table.name}.{column.name}: no SQLite type for {name}")
            columns.append(f"{column.name} {SQLITE_TYPES[base]}{'' if optional else ' NOT NULL'}")
        if table.primary_key:
            columns.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
        statements.append(f"CREATE TABLE {table.name} ({', '.join(columns)})")
        for index in table.indexes:
            indexed = ", ".join(index.columns)
            statements.append(f"CREATE INDEX {table.name}_{index.name} ON {table.name} ({indexed})")
    return statements


def sqlite_engine(schema: Any, rows: dict[str, list[tuple[Any, ...]]]) -> Engine:
    """An in-memory SQLite database holding ``rows``, as an ``Engine`` named ``sqlite``."""
    connection = sqlite3.connect(":memory:")
    # Standard SQL LIKE is case-sensitive; SQLite's is not unless asked.
    connection.execute("PRAGMA case_sensitive_like = ON")
    for statement in sqlite_ddl(schema):
        connection.execute(statement)
    for table, table_rows in rows.items():
        if table_rows:
            marks = ", ".join("?" * len(table_rows[0]))
            connection.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
    connection.commit()

    def execute(sql: str) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        cursor = connection.execute(sql)
        return tuple(d[0] for d in cursor.description or ()), cursor.fetchall()

    return Engine("sqlite", execute, sqlite3.Error)


def load_dataset(path: Path) -> tuple[Any, dict[str, list[tuple[Any, ...]]]]:
    """The ``ModuleSchema`` of the dataset module at ``path``, and its ``rows()``."""
    from cosmictron.module import load_module

    spec = importlib.util.spec_from_file_location("slt_dataset", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return load_module(path).schema, module.rows()
