"""Capture the queries real PostgreSQL clients send, as test fixtures.

Run against a PostgreSQL 15 started with ``log_statement=all`` (its log file given):
this script creates the test module's tables there, runs psql (``\\l``, ``\\dt``,
``\\d``, ``\\d item``), psycopg, asyncpg, SQLAlchemy reflection (psycopg and asyncpg),
pandas ``read_sql`` and LangChain's ``SQLDatabase`` against it, then reads the log and
writes every distinct catalogue or session statement with its parameters to
``fixtures/client_queries.json``. The OIDs PostgreSQL gave the tables are replaced by
``{oid:item}`` placeholders, which ``test_captured.py`` fills with Cosmictron's.

    python tests/pgwire/capture.py "host=127.0.0.1 port=54329 user=postgres" /tmp/pg/log
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

SCHEMA = [
    "DROP TABLE IF EXISTS item, secret, kinds",
    "CREATE TABLE item (id bigint PRIMARY KEY, name text NOT NULL UNIQUE, price double precision"
    " NOT NULL, qty bigint NOT NULL, active boolean NOT NULL, note text)",
    "CREATE TABLE secret (id bigint PRIMARY KEY, value text NOT NULL)",
]

ENTRY = re.compile(
    r"^\S+ \S+ UTC \[\d+\] LOG:  (?:statement|execute [^:]+): (?P<text>.*?)"
    r"(?=^\S+ \S+ UTC \[\d+\] (?:LOG|DETAIL|ERROR|STATEMENT):|\Z)"
    r"(?:^\S+ \S+ UTC \[\d+\] DETAIL:  parameters: (?P<params>.*?)(?=^\S+ \S+ UTC \[|\Z))?",
    re.MULTILINE | re.DOTALL,
)
PARAM = re.compile(r"\$(\d+) = (NULL|'((?:[^']|'')*)')")
CATALOGUE = re.compile(
    r"pg_catalog|information_schema|pg_\w+|version\(|current_schema|current_setting|^\s*show\b",
    re.IGNORECASE,
)


def run_clients(dsn: str) -> None:
    import asyncpg
    import pandas as pd
    import psycopg
    import sqlalchemy as sa

    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in SCHEMA:
            conn.execute(statement)
    for command in (r"\l", r"\dt", r"\d", r"\d item"):
        subprocess.run(["psql", dsn, "-X", "-c", command], check=True, capture_output=True)
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT * FROM item WHERE id = %s", (1,)).fetchall()
    parts = dict(item.split("=", 1) for item in dsn.split())
    url = f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"

    async def with_asyncpg() -> None:
        conn = await asyncpg.connect(url)
        await conn.fetch("SELECT * FROM item WHERE id = $1", 1)
        await conn.close()

    asyncio.run(with_asyncpg())
    for scheme in ("postgresql+psycopg", "postgresql+asyncpg"):
        if scheme.endswith("asyncpg"):
            from sqlalchemy.ext.asyncio import create_async_engine

            async def reflect(scheme: str = scheme) -> None:
                engine = create_async_engine(url.replace("postgresql", scheme, 1))
                async with engine.connect() as conn:
                    await conn.run_sync(lambda c: sa.MetaData().reflect(c))
                await engine.dispose()

            asyncio.run(reflect())
            continue
        engine = sa.create_engine(url.replace("postgresql", scheme, 1))
        inspector = sa.inspect(engine)
        inspector.get_table_names()
        for table in ("item",):
            inspector.get_columns(table)
            inspector.get_pk_constraint(table)
            inspector.get_indexes(table)
            inspector.get_unique_constraints(table)
            inspector.get_foreign_keys(table)
            inspector.get_check_constraints(table)
            inspector.get_table_comment(table)
            inspector.has_table(table)
        with engine.connect() as conn:
            pd.read_sql("SELECT * FROM item", conn)
        engine.dispose()
    from langchain_community.utilities import SQLDatabase

    database = SQLDatabase.from_uri(url.replace("postgresql", "postgresql+psycopg", 1))
    database.get_table_info()
    database._engine.dispose()


def read_log(text: str, oids: dict[str, int]) -> list[dict[str, object]]:
    seen: dict[tuple[str, tuple[object, ...]], dict[str, object]] = {}
    for match in ENTRY.finditer(text):
        query = match.group("text").strip().rstrip(";")
        if not CATALOGUE.search(query):
            continue
        params: list[object] = []
        for found in PARAM.finditer(match.group("params") or ""):
            params.append(None if found.group(2) == "NULL" else found.group(3).replace("''", "'"))
        for name, oid in oids.items():
            query = query.replace(f"'{oid}'", "'{oid:" + name + "}'")
            params = ["{oid:" + name + "}" if p == str(oid) else p for p in params]
        key = (query, tuple(params))
        seen.setdefault(key, {"query": query, "params": params})
    return list(seen.values())


def main() -> None:
    dsn, log = sys.argv[1], Path(sys.argv[2])
    start = log.stat().st_size
    run_clients(dsn)
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        oids = {
            name: int(conn.execute("SELECT %s::regclass::oid", (name,)).fetchone()[0])  # type: ignore[index]
            for name in ("item", "secret")
        }
    with log.open() as handle:
        handle.seek(start)
        captured = read_log(handle.read(), oids)
    out = Path(__file__).parent / "fixtures" / "client_queries.json"
    out.write_text(json.dumps(captured, indent=1) + "\n")
    print(f"{len(captured)} distinct catalogue and session statements -> {out}")


if __name__ == "__main__":
    main()
