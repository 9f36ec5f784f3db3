"""The catalogue and session statements real clients sent PostgreSQL 15 (captured by
``capture.py`` with ``log_statement=all``: psql's ``\\l``, ``\\dt``, ``\\d``, ``\\d t``,
psycopg, asyncpg, SQLAlchemy's reflection, pandas, LangChain) run against Cosmictron,
as the owner and as a reader: each answers without error, and no answer to the reader
names the private table."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.pgwire.conftest import PG

CAPTURED = json.loads((Path(__file__).parent / "fixtures" / "client_queries.json").read_text())


def oids(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT relname, oid FROM pg_class WHERE relkind = 'r'").fetchall()
    return {f"{{oid:{name}}}": str(oid) for name, oid in rows}


def fill(text: str, known: dict[str, str]) -> str:
    for placeholder, oid in known.items():
        text = text.replace(placeholder, oid)
    return text


def run_all(pg: PG, token: str) -> list[tuple[str, list[tuple[object, ...]]]]:
    answers = []
    with psycopg.connect(pg.dsn(token), autocommit=True) as conn:
        known = oids(conn)
        known.setdefault("{oid:secret}", "99999")
        for entry in CAPTURED:
            query = fill(entry["query"], known)
            params = [None if p is None else fill(p, known).encode() for p in entry["params"]]
            result = conn.pgconn.exec_params(query.encode(), params)
            error = result.error_message.decode()
            assert not error, f"{query[:300]}\n-> {error}"
            rows = [
                tuple(result.get_value(r, c) for c in range(result.nfields))
                for r in range(result.ntuples)
            ]
            answers.append((query, rows))
    return answers


def test_every_captured_statement_runs_for_the_owner(pg: PG) -> None:
    answers = run_all(pg, pg.owner_token)
    assert len(answers) == len(CAPTURED) >= 35
    text = repr(answers)
    assert "b'item'" in text and "b'secret'" in text


def test_no_captured_statement_shows_a_reader_the_private_table(pg: PG) -> None:
    answers = run_all(pg, pg.reader_token)
    assert "b'item'" in repr(answers)
    assert "secret" not in repr([rows for _, rows in answers])


@pytest.mark.parametrize("client", ["psql", "sqlalchemy", "asyncpg", "psycopg"])
def test_the_fixture_covers(client: str) -> None:
    marks = {
        "psql": "pg_catalog.pg_get_userbyid",
        "sqlalchemy": "pg_catalog.pg_attribute.attname AS name",
        "asyncpg": "typeinfo_tree",
        "psycopg": "to_regtype",
    }
    assert any(marks[client] in entry["query"] for entry in CAPTURED)
