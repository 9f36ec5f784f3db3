"""Random SQL of every supported shape, and random rows, for the differential tests.

``Generator(seed).query()`` makes one SELECT that Cosmictron and SQLite must answer
alike: expressions over nullable columns (arithmetic, comparisons, AND/OR/NOT, IS
NULL, IN lists, BETWEEN, LIKE), subqueries (scalar aggregates, IN, NOT IN, EXISTS, NOT
EXISTS, correlated or not), compound selects, FROM subqueries and CTEs, joins of up to
8 tables in a random FROM order, GROUP BY/HAVING, ORDER BY/LIMIT; and (shape ``more``,
issue 12's last constructs) row values, ``x IN table``, ``TOTAL``/``GROUP_CONCAT``,
bare columns in HAVING and ``WITH RECURSIVE`` (in rounds, or ordered from a queue);
and (shape ``bitwise``) SQLite's 64-bit ``&``, ``|``, ``~``, ``<<``, ``>>``.
``GROUP_CONCAT``'s order is SQLite's scan order, so it is compared through ``LENGTH``;
a bare column in HAVING only where its value is fixed by the group (grouped by the
table's ``id``) or does not matter.

Shapes are switched by name (``SHAPES``); a shape other work is still building would
be listed in ``PENDING`` and generated only once moved into ``SHAPES`` (CASE, CAST and
the scalar functions were moved once merged). The generator only writes what is
deterministic in SQLite: a scalar subquery is an aggregate (one row), a LIMIT comes
with an ORDER BY over every output column, text is compared only with text.
"""

from __future__ import annotations

import random
from typing import Any

SHAPES = frozenset(
    {
        "expr",
        "subquery",
        "compound",
        "join",
        "group",
        "derived",
        "order",
        "case",
        "cast",
        "functions",
        "more",
        "bitwise",
    }
)
"""The shapes generated now."""

PENDING: frozenset[str] = frozenset()
"""Shapes built on other branches: move each into ``SHAPES`` once merged (none now)."""

TABLES = 8
ROWS = 9
INT_COLUMNS = ("a", "b")
TEXT_COLUMNS = ("c",)


def module_source() -> str:
    """A Cosmictron module declaring the tables t0 … t7."""
    parts = []
    for number in range(TABLES):
        parts.append(
            f"@table(name='t{number}', public=True)\n"
            f"class T{number}:\n"
            f"    id: int = field(primary_key=True)\n"
            f"    a: Optional[int] = None\n"
            f"    b: Optional[int] = None\n"
            f"    c: Optional[str] = None\n"
        )
    return "\n".join(parts)


def sqlite_schema() -> list[str]:
    return [f"CREATE TABLE t{n} (id INTEGER PRIMARY KEY, a, b, c)" for n in range(TABLES)]


def rows(seed: int) -> dict[str, list[tuple[Any, ...]]]:
    """Small tables with small domains, so joins and IN find matches, and NULLs."""
    rng = random.Random(seed)
    data = {}
    for number in range(TABLES):
        count = rng.randint(0, ROWS) if number else ROWS
        data[f"t{number}"] = [
            (
                key,
                rng.choice([None, 0, 1, 2, 3, 4, -1]),
                rng.choice([None, 0, 1, 2, 5]),
                rng.choice([None, "x", "y", "xy", "", "Y"]),
            )
            for key in range(1, count + 1)
        ]
    return data


class Generator:
    """Random queries from one seed (the same seed, the same queries)."""

    def __init__(self, seed: int, shapes: frozenset[str] = SHAPES) -> None:
        self.rng = random.Random(seed)
        self.shapes = shapes

    def chance(self, shape: str, p: float) -> bool:
        return shape in self.shapes and self.rng.random() < p

    # -- expressions -------------------------------------------------------------------

    def int_atom(self, aliases: list[str]) -> str:
        rng = self.rng
        if aliases and rng.random() < 0.7:
            return f"{rng.choice(aliases)}.{rng.choice(INT_COLUMNS)}"
        return rng.choice(["NULL", "0", "1", "2", "3", "-1"])

    def int_expr(self, aliases: list[str], depth: int = 0) -> str:
        rng = self.rng
        if depth < 2 and self.chance("expr", 0.3):
            ops = ["+", "-", "*"]
            if "bitwise" in self.shapes:  # SQLite's 64-bit &, |, <<, >> (and ~ below)
                ops += ["&", "|", "<<", ">>"]
            op = rng.choice(ops)
            return f"({self.int_expr(aliases, depth + 1)} {op} {self.int_expr(aliases, depth + 1)})"
        if depth < 2 and self.chance("bitwise", 0.04):
            return f"(~{self.int_expr(aliases, depth + 1)})"
        if depth < 2 and self.chance("bitwise", 0.02):
            return f"(1 << {rng.choice(['62', '63', '64', '-1', '-64', '100'])})"
        if depth < 2 and self.chance("case", 0.08):
            return self.case_expr(aliases, depth + 1)
        if depth < 2 and self.chance("cast", 0.08):
            return self.cast_expr(aliases, depth + 1)
        if depth < 2 and self.chance("functions", 0.12):
            return self.int_function(aliases, depth + 1)
        return self.int_atom(aliases)

    def case_expr(self, aliases: list[str], depth: int) -> str:
        """Both forms of CASE, with and without ELSE (no ELSE: NULL)."""
        rng = self.rng
        otherwise = f" ELSE {self.int_expr(aliases, depth)}" if rng.random() < 0.6 else ""
        if rng.random() < 0.5:
            arms = " ".join(
                f"WHEN {self.predicate(aliases, 2)} THEN {self.int_expr(aliases, depth)}"
                for _ in range(rng.randint(1, 2))
            )
            return f"CASE {arms}{otherwise} END"
        arms = " ".join(
            f"WHEN {rng.choice(['NULL', '0', '1', '2'])} THEN {self.int_expr(aliases, depth)}"
            for _ in range(rng.randint(1, 3))
        )
        return f"CASE {self.int_expr(aliases, depth)} {arms}{otherwise} END"

    def cast_expr(self, aliases: list[str], depth: int) -> str:
        """CASTs whose result is a number (text columns too: their numeric prefix)."""
        rng = self.rng
        inner = self.int_expr(aliases, depth)
        text = f"{rng.choice(aliases)}.c" if aliases else "'12x'"
        literal = rng.choice(["1.5", "-2.7", "'3abc'", "' 4'", "NULL"])
        return rng.choice(
            [
                f"CAST({inner} AS INTEGER)",
                f"CAST({inner} AS REAL)",
                f"CAST(CAST({inner} AS TEXT) AS INTEGER)",
                f"CAST({text} AS INTEGER)",
                f"CAST({literal} AS INTEGER)",
            ]
        )

    def int_function(self, aliases: list[str], depth: int) -> str:
        """The scalar functions with an integer result, NULL arguments included."""
        rng = self.rng

        def arg() -> str:
            return self.int_expr(aliases, depth)

        text = f"{rng.choice(aliases)}.c" if aliases else rng.choice(["'x'", "NULL", "''"])
        return rng.choice(
            [
                f"ABS({arg()})",
                f"COALESCE({arg()}, {arg()})",
                f"COALESCE({arg()}, {arg()}, {arg()})",
                f"IFNULL({arg()}, {arg()})",
                f"NULLIF({arg()}, {arg()})",
                f"MAX({arg()}, {arg()})",
                f"MIN({arg()}, {arg()}, {arg()})",
                f"LENGTH({text})",
                f"INSTR({text}, 'y')",
                f"LENGTH(UPPER({text}))",
                f"LENGTH(SUBSTR({text}, {rng.randint(-2, 3)}, {rng.randint(0, 2)}))",
                f"LENGTH(TRIM({text}, 'x'))",
                f"LENGTH(REPLACE({text}, 'x', 'zz'))",
                f"ROUND({arg()})",
            ]
        )

    def text_expr(self, aliases: list[str]) -> str:
        """A text-valued output: a column through the text functions, or TYPEOF."""
        rng = self.rng
        column = f"{rng.choice(aliases)}.c"
        return rng.choice(
            [
                f"LOWER({column})",
                f"UPPER({column})",
                f"SUBSTR({column}, {rng.randint(-1, 2)})",
                f"TRIM({column}, 'x')",
                f"LTRIM({column}, 'x')",
                f"REPLACE({column}, 'y', 'Q')",
                f"COALESCE({column}, 'none')",
                f"TYPEOF({self.int_expr(aliases, 1)})",
                f"TYPEOF({column})",
                f"CAST({self.int_expr(aliases, 1)} AS TEXT)",
            ]
        )

    def predicate(self, aliases: list[str], depth: int = 0, outer: list[str] | None = None) -> str:
        rng = self.rng
        if depth < 2 and self.chance("expr", 0.35):
            op = rng.choice(["AND", "OR"])
            left = self.predicate(aliases, depth + 1, outer)
            right = self.predicate(aliases, depth + 1, outer)
            text = f"({left} {op} {right})"
            return f"NOT {text}" if rng.random() < 0.2 else text
        if depth < 3 and self.chance("subquery", 0.25):
            return self.subquery_predicate(aliases, depth, outer)
        if depth < 3 and self.chance("more", 0.08):
            return self.row_predicate(aliases, depth)
        kind = rng.randrange(7) if "expr" in self.shapes else 0
        if kind == 0:
            op = rng.choice(["=", "<>", "<", "<=", ">", ">="])
            return f"{self.int_expr(aliases, 1)} {op} {self.int_expr(aliases, 1)}"
        if kind == 1:
            return f"{self.int_atom(aliases)} IS {rng.choice(['', 'NOT '])}NULL"
        if kind == 2:
            items = ", ".join(
                rng.choice(["NULL", "0", "1", "2", "4"]) for _ in range(rng.randint(1, 3))
            )
            return f"{self.int_atom(aliases)} {rng.choice(['', 'NOT '])}IN ({items})"
        if kind == 3:
            low = rng.randint(-1, 2)
            not_ = rng.choice(["", "NOT "])
            high = low + rng.randint(0, 3)
            return f"{self.int_atom(aliases)} {not_}BETWEEN {low} AND {high}"
        if kind == 4 and aliases:
            pattern = rng.choice(["'x%'", "'%y'", "'_'", "'%'", "'Y%'"])
            return f"{rng.choice(aliases)}.c {rng.choice(['', 'NOT '])}LIKE {pattern}"
        if kind == 5 and aliases:
            op = rng.choice(["=", "<>", "<"])
            return f"{rng.choice(aliases)}.c {op} '{rng.choice(['x', 'y', ''])}'"
        return f"{self.int_atom(aliases)} = {self.int_atom(aliases)}"

    def subquery_predicate(self, aliases: list[str], depth: int, outer: list[str] | None) -> str:
        """IN / NOT IN / EXISTS / NOT EXISTS / a comparison with a scalar aggregate."""
        rng = self.rng
        table = f"t{rng.randrange(TABLES)}"
        inner = f"s{depth}"
        visible = [inner]
        conditions = []
        if aliases and rng.random() < 0.6:  # correlated
            outer_column = f"{rng.choice(aliases)}.{rng.choice(INT_COLUMNS)}"
            conditions.append(f"{inner}.{rng.choice(INT_COLUMNS)} = {outer_column}")
        if rng.random() < 0.5:
            conditions.append(self.predicate(visible, depth + 1, aliases))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        kind = rng.randrange(4)
        if kind == 0:
            return f"{rng.choice(['', 'NOT '])}EXISTS (SELECT 1 FROM {table} {inner}{where})"
        if kind == 1:
            body = f"SELECT {inner}.{rng.choice(INT_COLUMNS)} FROM {table} {inner}{where}"
            if self.chance("compound", 0.2):
                body += f" UNION SELECT {rng.choice(['NULL', '1', '7'])}"
            return f"{self.int_atom(aliases)} {rng.choice(['', 'NOT '])}IN ({body})"
        aggregate = rng.choice(
            [
                "COUNT(*)",
                f"MAX({inner}.a)",
                f"MIN({inner}.b)",
                f"SUM({inner}.a)",
                f"COUNT({inner}.b)",
            ]
        )
        op = rng.choice(["=", "<", ">", "<>"])
        return f"{self.int_atom(aliases)} {op} (SELECT {aggregate} FROM {table} {inner}{where})"

    def row_predicate(self, aliases: list[str], depth: int) -> str:
        """Row values: compared, in a list, in a subquery (correlated or not), and
        SQLite's ``(…) IN table``."""
        rng = self.rng

        def pair() -> str:
            return f"({self.int_atom(aliases)}, {self.int_atom(aliases)})"

        kind = rng.randrange(5)
        not_ = rng.choice(["", "NOT "])
        if kind == 0:
            return f"{pair()} {rng.choice(['=', '<>', '<', '<=', '>', '>='])} {pair()}"
        if kind == 1:
            items = ", ".join(pair() for _ in range(rng.randint(1, 3)))
            return f"{pair()} {not_}IN ({items})"
        if kind == 2:
            low = rng.randint(-1, 2)
            return f"{pair()} {not_}BETWEEN ({low}, 0) AND ({low + 2}, {rng.randint(0, 3)})"
        inner = f"s{depth}"
        if kind == 3:
            where = ""
            if aliases and rng.random() < 0.5:
                outer_column = f"{rng.choice(aliases)}.{rng.choice(INT_COLUMNS)}"
                where = f" WHERE {inner}.{rng.choice(INT_COLUMNS)} = {outer_column}"
            columns = f"{inner}.{rng.choice(INT_COLUMNS)}, {inner}.{rng.choice(INT_COLUMNS)}"
            table = f"t{rng.randrange(TABLES)}"
            return f"{pair()} {not_}IN (SELECT {columns} FROM {table} {inner}{where})"
        if aliases:
            alias = rng.choice(aliases)
            row = f"({alias}.id, {alias}.a, {alias}.b, {alias}.c)"
        else:
            row = f"({rng.randint(0, 9)}, {self.int_atom([])}, 1, 'x')"
        return f"{row} {not_}IN t{rng.randrange(TABLES)}"

    def recursive_query(self) -> tuple[str, bool]:
        """WITH RECURSIVE: a counter from a table's values, or the values reachable
        through a table read as edges (a -> b), with UNION or UNION ALL, in rounds or
        (an ORDER BY on the CTE) from a priority queue."""
        rng = self.rng
        start = f"t{rng.randrange(TABLES)}"
        edges = f"t{rng.randrange(TABLES)}"
        if rng.random() < 0.3:
            # An ORDER BY on the CTE picks which row its queue gives up next (depth or
            # breadth first), and with a LIMIT which rows are made; over every column,
            # so the rows taken do not depend on the order of ties.
            union = rng.choice(["UNION", "UNION ALL"])
            order = rng.choice(["2 DESC, 1", "2, 1 DESC", "1, 2", "1 DESC, 2 DESC"])
            limit = rng.choice(["", f" LIMIT {rng.randint(0, 12)}"])
            body = (
                f"SELECT s.a, 0 FROM {start} s WHERE s.id = {rng.randrange(ROWS)} {union} "
                f"SELECT e.b, w.d + 1 FROM w JOIN {edges} e ON e.a = w.n WHERE w.d < 4 "
                f"ORDER BY {order}{limit}"
            )
            return f"WITH RECURSIVE w(n, d) AS ({body}) SELECT n, d FROM w", False
        if rng.random() < 0.5:
            union = rng.choice(["UNION", "UNION ALL"])
            bound = rng.randint(0, 4)
            body = (
                f"SELECT s.a FROM {start} s WHERE {self.predicate(['s'], 2)} {union} "
                f"SELECT n + 1 FROM w WHERE n < {bound}"
            )
        else:
            body = (
                f"SELECT s.a FROM {start} s WHERE s.id = {rng.randrange(ROWS)} UNION "
                f"SELECT e.b FROM w JOIN {edges} e ON e.a = w.n"
            )
        outer = rng.choice(
            [
                "SELECT n FROM w",
                "SELECT n, COUNT(*) FROM w GROUP BY n",
                f"SELECT w.n, r.id FROM w JOIN t{rng.randrange(TABLES)} r ON r.b = w.n",
            ]
        )
        return f"WITH RECURSIVE w(n) AS ({body}) {outer}", False

    def scalar_subquery(self, aliases: list[str]) -> str:
        rng = self.rng
        table = f"t{rng.randrange(TABLES)}"
        where = ""
        if aliases and rng.random() < 0.7:
            outer = f"{rng.choice(aliases)}.{rng.choice(INT_COLUMNS)}"
            where = f" WHERE q.{rng.choice(INT_COLUMNS)} = {outer}"
        aggregate = rng.choice(["COUNT(*)", "MAX(q.a)", "MIN(q.b)", "SUM(q.b)"])
        return f"(SELECT {aggregate} FROM {table} q{where})"

    # -- queries -----------------------------------------------------------------------

    def from_clause(self) -> tuple[str, list[str]]:
        """A FROM of 1 … 8 tables in random order, connected by equalities."""
        rng = self.rng
        count = 1
        if self.chance("join", 0.5):
            count = rng.choice([2, 2, 3, 3, 4, 5, 8])
        tables = rng.sample(range(TABLES), count) if count <= TABLES else list(range(TABLES))
        aliases = [f"r{i}" for i in range(count)]
        items = []
        for position, (number, alias) in enumerate(zip(tables, aliases, strict=True)):
            source = f"t{number}"
            if position == 0 and self.chance("derived", 0.15):
                inner = self.predicate(["d"])
                source = f"(SELECT d.id, d.a, d.b, d.c FROM t{number} d WHERE {inner})"
            if position == 0:
                items.append(f"{source} {alias}")
                continue
            partner = rng.choice(aliases[:position])
            condition = f"{alias}.{rng.choice(INT_COLUMNS)} = {partner}.{rng.choice(INT_COLUMNS)}"
            if rng.random() < 0.5:
                items.append(f"JOIN {source} {alias} ON {condition}")
            else:
                items.append(f"JOIN {source} {alias} ON 1 = 1 AND {condition}")
        return " ".join(items), aliases

    def select(self) -> tuple[str, bool]:
        """One SELECT and whether its ORDER BY orders it completely."""
        rng = self.rng
        from_text, aliases = self.from_clause()
        where = f" WHERE {self.predicate(aliases)}" if rng.random() < 0.8 else ""
        if self.chance("group", 0.25):
            key = f"{rng.choice(aliases)}.{rng.choice(INT_COLUMNS)}"
            aggregate = rng.choice(
                [
                    "COUNT(*)",
                    f"SUM({rng.choice(aliases)}.a)",
                    f"MAX({rng.choice(aliases)}.b)",
                    f"COUNT(DISTINCT {rng.choice(aliases)}.a)",
                ]
            )
            if self.chance("more", 0.3):
                alias = rng.choice(aliases)
                aggregate = rng.choice(
                    [
                        f"TOTAL({alias}.a)",
                        f"TOTAL(DISTINCT {alias}.b)",
                        f"LENGTH(GROUP_CONCAT({alias}.c))",
                        f"LENGTH(GROUP_CONCAT({alias}.a, '--'))",
                        f"LENGTH(GROUP_CONCAT(DISTINCT {alias}.b))",
                    ]
                )
            having = ""
            if rng.random() < 0.4:
                having = f" HAVING COUNT(*) {rng.choice(['>', '<', '='])} {rng.randint(0, 3)}"
            if self.chance("more", 0.25):
                # A bare column: fixed by the group (grouped by its table's id) or unread.
                alias = rng.choice(aliases)
                key = f"{alias}.id"
                having = rng.choice(
                    [
                        f" HAVING {alias}.a > {rng.randint(-1, 2)}",
                        f" HAVING {alias}.c IS NOT NULL AND COUNT(*) > 0",
                        f" HAVING NULL NOT IN ({rng.choice(aliases)}.b)",
                    ]
                )
            text = f"SELECT {key}, {aggregate} FROM {from_text}{where} GROUP BY {key}{having}"
            return self.ordered(text, 2)
        outputs = [self.int_expr(aliases) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            outputs.append(f"{rng.choice(aliases)}.c")
        if self.chance("functions", 0.15):
            outputs.append(self.text_expr(aliases))
        if self.chance("subquery", 0.2):
            outputs.append(self.scalar_subquery(aliases))
        if self.chance("expr", 0.2):
            outputs.append(self.predicate(aliases, 2))
        distinct = "DISTINCT " if rng.random() < 0.1 else ""
        text = f"SELECT {distinct}{', '.join(outputs)} FROM {from_text}{where}"
        return self.ordered(text, len(outputs))

    def ordered(self, text: str, width: int) -> tuple[str, bool]:
        rng = self.rng
        if self.chance("order", 0.25):
            positions = list(range(1, width + 1))
            rng.shuffle(positions)
            keys = ", ".join(f"{p}{rng.choice(['', ' DESC'])}" for p in positions)
            limit = f" LIMIT {rng.randint(0, 6)}" if rng.random() < 0.5 else ""
            return f"{text} ORDER BY {keys}{limit}", True
        return text, False

    def query(self) -> tuple[str, bool]:
        """A query and whether its row order is defined (compare as a list)."""
        rng = self.rng
        if self.chance("compound", 0.15):
            width = rng.randint(1, 2)
            parts = []
            for _ in range(rng.randint(2, 3)):
                from_text, aliases = self.from_clause()
                outputs = ", ".join(self.int_atom(aliases) for _ in range(width))
                where = f" WHERE {self.predicate(aliases)}" if rng.random() < 0.6 else ""
                parts.append(f"SELECT {outputs} FROM {from_text}{where}")
            text = parts[0]
            for part in parts[1:]:
                text += f" {rng.choice(['UNION', 'UNION ALL', 'INTERSECT', 'EXCEPT'])} {part}"
            return self.ordered(text, width)
        if self.chance("derived", 0.08):
            inner, _ = self.select()
            if "ORDER BY" in inner:
                inner = inner[: inner.index(" ORDER BY")]
            return f"WITH w AS ({inner}) SELECT COUNT(*) FROM w", False
        if self.chance("expr", 0.05):
            return f"SELECT {self.predicate([])}, {self.int_expr([])}", False
        if self.chance("more", 0.05):
            return self.recursive_query()
        return self.select()
