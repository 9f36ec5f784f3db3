"""SQLite's sqllogictest format: read a ``.test`` file, make its tables, format results.

``bench/sqllogictest.py`` runs files of SQLite's own conformance corpus through
``Database.sql``; this module holds what that needs and nothing that runs a database:

- ``records``: a file as ``Statement`` and ``Query`` records, with ``skipif`` /
  ``onlyif`` applied for the ``sqlite`` engine (the corpus's answers are SQLite's) and
  ``hash-threshold`` tracked;
- ``module_source``: a Cosmictron module declaring the tables of the file's ``CREATE
  TABLE`` and ``CREATE INDEX`` statements, as a new user would write it (Cosmictron has
  no DDL through SQL, so a module is how tables come to exist);
- ``result_values`` / ``matches``: a result formatted and compared exactly as
  sqllogictest does (type letters I, T, R; ``rowsort`` / ``valuesort`` / ``nosort``; an
  MD5 of the values past the threshold).

The rules follow sqllogictest's C runner (``slt_sqlite.c`` / ``sqllogictest.c``): NULL
prints ``NULL``, an empty string ``(empty)``, I is a 64-bit integer, R is ``%.3f``, T is
the text with every byte outside printable ASCII replaced by ``@``; each value is one
line, and the hash is the MD5 of every value followed by a newline, after sorting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import keyword
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENGINE = "sqlite"
"""The engine name ``skipif`` / ``onlyif`` are read for: the corpus holds SQLite's answers."""


@dataclasses.dataclass(frozen=True)
class Statement:
    sql: str
    expect_ok: bool
    line: int


@dataclasses.dataclass(frozen=True)
class Query:
    sql: str
    types: str
    sort: str  # nosort, rowsort or valuesort
    expected: tuple[str, ...]  # one value a line, or ("N values hashing to H",)
    hash_threshold: int
    line: int


Record = Statement | Query

_HASHED = re.compile(r"^(\d+) values hashing to ([0-9a-f]{32})$")


def records(text: str) -> Iterator[Record]:
    """The records of one ``.test`` file, in order, those for other engines left out."""
    lines = text.splitlines()
    position = 0
    threshold = 0
    while position < len(lines):
        line = lines[position].strip()
        if not line or line.startswith("#"):
            position += 1
            continue
        start = position
        skip = False
        while line.startswith(("skipif", "onlyif")):
            word, _, engine = line.partition(" ")
            engine = engine.split("#")[0].strip()
            if (word == "skipif") == (engine == ENGINE):
                skip = True
            position += 1
            line = lines[position].strip() if position < len(lines) else ""
        words = line.split()
        position += 1
        body: list[str] = []
        while position < len(lines) and lines[position].strip() and lines[position] != "----":
            body.append(lines[position])
            position += 1
        result: list[str] = []
        if position < len(lines) and lines[position] == "----":
            position += 1
            while position < len(lines) and lines[position].strip():
                result.append(lines[position].strip())
                position += 1
        if not words:
            continue
        if words[0] == "halt":
            if not skip:
                return
            continue
        if words[0] == "hash-threshold":
            threshold = int(words[1])
            continue
        if skip:
            continue
        sql = "\n".join(body)
        if words[0] == "statement":
            yield Statement(sql, words[1] == "ok", start + 1)
        elif words[0] == "query":
            sort = words[2] if len(words) > 2 else "nosort"
            yield Query(sql, words[1], sort, tuple(result), threshold, start + 1)


# -- tables -----------------------------------------------------------------------------

_INTEGER = ("INT",)
_REAL = ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")
_TEXT = ("CHAR", "CLOB", "TEXT", "STRING")


def python_type(declared: str) -> str:
    """The column type a user would annotate for a SQL declared type (SQLite affinity)."""
    upper = declared.upper()
    if any(word in upper for word in _INTEGER):
        return "int"
    if any(word in upper for word in _TEXT):
        return "str"
    if "BLOB" in upper:
        return "bytes"
    if any(word in upper for word in _REAL):
        return "float"
    return "str"


@dataclasses.dataclass
class TableDecl:
    name: str
    columns: list[tuple[str, str, bool]]  # name, python type, nullable
    primary_key: list[str]
    unique: list[tuple[str, ...]]
    indexes: list[tuple[str, tuple[str, ...], bool]]


@dataclasses.dataclass(frozen=True)
class IndexDecl:
    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool


def parse_create(sql: str) -> TableDecl | IndexDecl | None:
    """A ``CREATE TABLE`` (with its columns) or ``CREATE [UNIQUE] INDEX`` as a
    declaration, or None: another statement, or a form a module cannot declare (``CREATE
    TABLE ... AS SELECT``), which then runs through ``db.sql`` and is refused there."""
    from sqlglot import exp, parse_one

    head = " ".join(sql.split()[:3]).upper()
    if not head.startswith("CREATE"):
        return None
    try:
        tree = parse_one(sql, read="sqlite")
    except Exception:
        return None
    if not isinstance(tree, exp.Create):
        return None
    kind = str(tree.args.get("kind") or "").upper()
    if kind == "TABLE" and isinstance(tree.this, exp.Schema):
        if tree.expression is not None:
            return None
        decl = TableDecl(tree.this.this.name.lower(), [], [], [], [])
        for item in tree.this.expressions:
            if isinstance(item, exp.ColumnDef):
                column = item.name.lower()
                declared = item.args.get("kind")
                nullable = True
                for constraint in item.args.get("constraints") or []:
                    kind_of = constraint.args.get("kind")
                    if isinstance(kind_of, exp.PrimaryKeyColumnConstraint):
                        decl.primary_key = [column]
                        nullable = False
                    elif isinstance(kind_of, exp.NotNullColumnConstraint):
                        nullable = bool(kind_of.args.get("allow_null"))
                    elif isinstance(kind_of, exp.UniqueColumnConstraint):
                        decl.unique.append((column,))
                text = declared.sql(dialect="sqlite") if declared is not None else ""
                decl.columns.append((column, python_type(text), nullable))
            elif isinstance(item, exp.PrimaryKey):
                decl.primary_key = [part.name.lower() for part in item.expressions]
            elif isinstance(item, exp.UniqueColumnConstraint):
                schema = item.this
                names = getattr(schema, "expressions", [])
                decl.unique.append(tuple(part.name.lower() for part in names))
        return decl
    if kind in ("INDEX", "UNIQUE INDEX"):
        index = tree.this
        target = index.args.get("table") if isinstance(index, exp.Index) else None
        params = index.args.get("params") if isinstance(index, exp.Index) else None
        if target is None or params is None:
            return None
        names = []
        for column in params.args.get("columns") or []:
            expression = column.this if isinstance(column, exp.Ordered) else column
            names.append(expression.name.lower())
        unique = bool(tree.args.get("unique"))
        return IndexDecl(target.name.lower(), index.name.lower(), tuple(names), unique)
    return None


def declared_tables(statements: list[str]) -> tuple[dict[str, TableDecl], set[str]]:
    """The tables the ``CREATE TABLE`` / ``CREATE INDEX`` statements declare (the first
    definition of each name), and the statements taken."""
    tables: dict[str, TableDecl] = {}
    taken: set[str] = set()
    for sql in statements:
        decl = parse_create(sql)
        if isinstance(decl, TableDecl):
            if decl.name in tables:
                continue
            tables[decl.name] = decl
            taken.add(sql)
        elif isinstance(decl, IndexDecl) and decl.table in tables:
            declared = tables[decl.table].indexes
            if all(decl.name != held for held, _, _ in declared):
                declared.append((decl.name, decl.columns, decl.unique))
                taken.add(sql)
    return tables, taken


def module_source(tables: dict[str, TableDecl]) -> str:
    """Python source of a module declaring ``tables`` (public, every column nullable
    unless NOT NULL or the primary key, as SQLite's columns are)."""
    out = ["from typing import Optional", "from cosmictron import Index, field, table", ""]
    for number, decl in enumerate(tables.values()):
        indexes = [
            f"Index({name!r}, {columns!r}, 'btree', {unique})"
            for name, columns, unique in decl.indexes
        ]
        indexes += [
            f"Index({'u_' + '_'.join(columns)!r}, {columns!r}, 'btree', True)"
            for columns in decl.unique
            if list(columns) != decl.primary_key
        ]
        options = [f"name={decl.name!r}", "public=True"]
        if indexes:
            options.append(f"indexes=[{', '.join(indexes)}]")
        if len(decl.primary_key) > 1:
            options.append(f"primary_key={tuple(decl.primary_key)!r}")
        out.append(f"@table({', '.join(options)})")
        out.append(f"class Table{number}:")
        for column, annotation, nullable in decl.columns:
            if keyword.iskeyword(column) or not column.isidentifier():
                raise ValueError(f"column name {column!r} is not a Python identifier")
            if decl.primary_key == [column]:
                out.append(f"    {column}: {annotation} = field(primary_key=True)")
            elif nullable:
                out.append(f"    {column}: Optional[{annotation}] = None")
            else:
                out.append(f"    {column}: {annotation}")
        if not decl.columns:
            out.append("    pass")
        out.append("")
    return "\n".join(out)


# -- results ----------------------------------------------------------------------------

_NUMBER_PREFIX = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _text_number(text: str, integer: bool) -> Any:
    """SQLite's numeric value of a text: its longest numeric prefix (0 if none)."""
    found = _NUMBER_PREFIX.match(text)
    if found is None:
        return 0 if integer else 0.0
    value = float(found.group(0))
    return int(value) if integer else value


def format_value(value: Any, letter: str) -> str:
    """One value as sqllogictest prints it in a column of type ``letter``."""
    if value is None:
        return "NULL"
    if letter == "I":
        if isinstance(value, str):
            value = _text_number(value, integer=True)
        elif isinstance(value, float):
            value = int(value) if value == value and abs(value) < 2**63 else 0
        return str(int(value))
    if letter == "R":
        if isinstance(value, str):
            value = _text_number(value, integer=False)
        return f"{float(value):.3f}"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float):
        text = f"{value:.15g}"
        if "e" in text:
            mantissa, _, exponent = text.partition("e")
            if "." not in mantissa:
                mantissa += ".0"
            text = f"{mantissa}e{exponent}"
        elif "." not in text and "n" not in text:
            text += ".0"
    elif isinstance(value, bytes):
        text = value.decode("latin-1")
    else:
        text = str(value)
    if text == "":
        return "(empty)"
    return "".join(c if " " <= c <= "~" else "@" for c in text)


def result_values(rows: list[tuple[Any, ...]], types: str, sort: str) -> list[str]:
    """The result as sqllogictest's list of values (sorted as the record says)."""
    formatted = [
        tuple(
            format_value(value, types[i] if i < len(types) else "T") for i, value in enumerate(row)
        )
        for row in rows
    ]
    if sort == "rowsort":
        formatted.sort()
    values = [value for row in formatted for value in row]
    if sort == "valuesort":
        values.sort()
    return values


def digest(values: list[str]) -> str:
    md5 = hashlib.md5()
    for value in values:
        md5.update(value.encode())
        md5.update(b"\n")
    return md5.hexdigest()


def matches(query: Query, values: list[str]) -> bool:
    """Whether ``values`` is the answer the record expects (listed or hashed)."""
    if len(query.expected) == 1 and (hashed := _HASHED.match(query.expected[0])):
        return len(values) == int(hashed.group(1)) and digest(values) == hashed.group(2)
    return tuple(values) == query.expected


def corpus_files(root: Path, patterns: list[str]) -> list[Path]:
    """The ``.test`` files under ``root`` matching any glob in ``patterns``, sorted."""
    found: set[Path] = set()
    for pattern in patterns:
        found.update(path for path in root.glob(pattern) if path.suffix == ".test")
    return sorted(found)
