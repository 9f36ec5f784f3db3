"""The corpus's ``CREATE``/``DROP`` of tables and indexes, done as a Cosmictron user does.

Tables and indexes come from the module in Cosmictron, so a user whose schema changes
edits the module and updates the running database with it (``db.update_module``, a
hot-swap). ``CorpusSchema`` does that for a ``.test`` file: it starts from the module of
the file's first definitions (``slt_corpus.declared_tables``), follows each ``CREATE
TABLE``, ``CREATE INDEX``, ``DROP TABLE`` and ``DROP INDEX`` in order, and before the
next statement or query that reads data updates the module when it changed.

``DROP TABLE t`` empties ``t`` through ``db.sql`` (``DELETE FROM t``) and forgets its
indexes; the module keeps declaring it (a hot-swap may not drop a table that holds rows,
and the corpus makes the table again right after), but until its ``CREATE TABLE`` comes
back the runner refuses queries that name it. A ``CREATE TABLE`` of a dropped table
with another definition is a module update that changes the table's columns: refused by
the migration rules, and counted as a failed statement.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from slt_corpus import IndexDecl, TableDecl, module_source, parse_create

_DROP = re.compile(r"^\s*DROP\s+(TABLE|INDEX)\s+(IF\s+EXISTS\s+)?(\w+)\s*;?\s*$", re.I)


class CorpusSchema:
    def __init__(self, tables: dict[str, TableDecl]) -> None:
        self.declared = copy.deepcopy(tables)
        self.live: set[str] = set()  # tables made and not dropped
        self.live_indexes: dict[str, str] = {}  # index name -> its table
        self.installed = module_source(self.declared)
        self.updates = 0

    def is_ddl(self, sql: str) -> bool:
        return parse_create(sql) is not None or _DROP.match(sql) is not None

    def run(self, db: Any, sql: str) -> str | None:
        """Apply one DDL statement; the error SQLite gives for it, or None."""
        decl = parse_create(sql)
        if isinstance(decl, TableDecl):
            return self._create_table(decl)
        if isinstance(decl, IndexDecl):
            return self._create_index(decl)
        drop = _DROP.match(sql)
        assert drop is not None
        kind, if_exists, name = drop.group(1).upper(), drop.group(2), drop.group(3).lower()
        if kind == "TABLE":
            if name not in self.live:
                return None if if_exists else f"no such table: {name}"
            db.sql(f"DELETE FROM {name}")
            self.live.discard(name)
            self.declared[name].indexes.clear()
            self.live_indexes = {i: t for i, t in self.live_indexes.items() if t != name}
            return None
        table = self.live_indexes.pop(name, None)
        if table is None:
            return None if if_exists else f"no such index: {name}"
        indexes = self.declared[table].indexes
        indexes[:] = [index for index in indexes if index[0] != name]
        return None

    def _create_table(self, decl: TableDecl) -> str | None:
        if decl.name in self.live:
            return f"table {decl.name} already exists"
        held = self.declared.get(decl.name)
        if held is None or (held.columns, held.primary_key, held.unique) != (
            decl.columns,
            decl.primary_key,
            decl.unique,
        ):
            self.declared[decl.name] = decl
        else:
            decl = held
        self.live.add(decl.name)  # its indexes declared up front count once made
        return None

    def _create_index(self, decl: IndexDecl) -> str | None:
        if decl.table not in self.live:
            return f"no such table: {decl.table}"
        if decl.name in self.live_indexes:
            return f"index {decl.name} already exists"
        indexes = self.declared[decl.table].indexes
        entry = (decl.name, decl.columns, decl.unique)
        if entry not in indexes:
            indexes[:] = [index for index in indexes if index[0] != decl.name] + [entry]
        self.live_indexes[decl.name] = decl.table
        return None

    def sync(self, db: Any) -> None:
        """Update the database's module to the tables and indexes made so far.

        Raises:
            whatever ``db.update_module`` raises (a change the migration refuses).
        """
        source = module_source(self.declared)
        if source != self.installed:
            db.update_module(source.encode(), filename="slt_module.py")
            self.installed = source
            self.updates += 1

    def dropped_in(self, sql: str) -> str | None:
        """A dropped (not made again) table the query names, or None."""
        gone = [name for name in self.declared if name not in self.live]
        if not gone:
            return None
        words = set(re.findall(r"\w+", sql.lower()))
        return next((name for name in sorted(gone) if name in words), None)
