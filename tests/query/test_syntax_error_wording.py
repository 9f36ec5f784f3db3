"""SQL syntax errors in the words of SQL (issue 16), never the parser's class names, and
the parser's own remarks kept off an embedded application's stderr."""

from __future__ import annotations

import logging

import pytest

from cosmictron.errors import SqlError
from tests.query.shop import SHOP, load


@pytest.fixture
def shop(open_db):
    db = open_db(SHOP)
    load(db)
    return db


def failure(db, query):
    with pytest.raises(SqlError) as caught:
        db.sql(query)
    return caught.value


@pytest.mark.parametrize(
    ("query", "shown", "column", "text"),
    [
        (
            "SELECT 2 * FROM customer",
            "syntax error near 'SELECT 2 * FROM': '*' needs an expression",
            12,
            "FROM",
        ),
        (
            "SELECT * FROM customer WHERE",
            "near 'SELECT * FROM customer WHERE': 'WHERE' needs an expression",
            24,
            "WHERE",
        ),
        (
            "SELECT id FROM customer WHERE age = = 1",
            "near '…customer WHERE age = =': '=' needs an expression",
            37,
            "=",
        ),
        ("SELECT (1 FROM customer", "syntax error near 'SELECT (1 FROM': expected ')'", 11, "FROM"),
        ("SELEC 1", "syntax error near 'SELEC 1': unexpected text", 7, "1"),
    ],
)
def test_syntax_errors_say_what_is_wrong_in_sql_words(shop, query, shown, column, text):
    error = failure(shop, query)
    assert shown in str(error), str(error)
    assert f"(line 1, column {column})" in str(error)
    assert (error.line, error.column, error.text) == (1, column, text)
    assert "<class" not in str(error) and "sqlglot" not in str(error)
    assert "Required keyword" not in str(error)


def test_an_unterminated_string_is_named_without_the_tokenizer_s_words(shop):
    error = failure(shop, "SELECT * FROM customer WHERE name = 'a")
    assert "Error tokenizing" not in str(error)
    assert "unterminated string" in str(error)


def test_the_parser_writes_nothing_to_stderr_of_an_embedded_application(shop, capfd):
    # No logging configured (an embedded application's default): SQLGlot's warning would
    # reach stderr through logging's last-resort handler.
    root = logging.getLogger()
    handlers, root.handlers = root.handlers, []
    try:
        error = failure(shop, "VACUUM customer")
    finally:
        root.handlers = handlers
    assert "unsupported statement" in str(error)
    captured = capfd.readouterr()
    assert "Falling back" not in captured.err and captured.err == ""


def test_sqlglot_used_by_the_application_still_logs(caplog):
    import sqlglot

    with caplog.at_level(logging.WARNING, logger="sqlglot"):
        sqlglot.parse("VACUUM customer", read="sqlite")
    assert any("Falling back" in record.getMessage() for record in caplog.records)
