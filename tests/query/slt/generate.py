"""Rewrite the expected rows of every ``.slt`` file in this folder from SQLite.

Run from the repository root after adding records or changing the dataset:

    .venv/bin/python tests/query/slt/generate.py

Each ``query`` record that runs on SQLite gets SQLite's rows as its expected section;
records marked ``skipif sqlite`` or ``onlyif <other engine>`` keep their hand-written rows.
A ``statement error`` record must fail on SQLite too (unless skipped there), or this
script reports it. Review the diff: SQLite is the oracle, not an authority on intent.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.query import slt_format  # noqa: E402


def main() -> int:
    schema, rows = slt_format.load_dataset(HERE / "dataset.py")
    engine = slt_format.sqlite_engine(schema, rows)
    problems = []
    for path in sorted(HERE.glob("*.slt")):
        blocks = slt_format.parse_file(path)
        count = 0
        for record in slt_format.records(blocks):
            if not record.runs_on(engine.name):
                continue
            if record.kind == "error":
                problem = slt_format.run_record(record, engine)
                if problem:
                    problems.append(problem)
                continue
            try:
                columns, result = engine.execute(record.sql)
                if len(columns) != len(record.types):
                    raise slt_format.ValueTypeError(
                        f"{len(columns)} columns, {len(record.types)} types declared"
                    )
                record.expected = slt_format.format_rows(record, result)
                count += 1
            except Exception as error:
                problems.append(f"{record.where()}: {type(error).__name__}: {error}")
        path.write_text(slt_format.render(blocks))
        print(f"{path.name}: {count} queries rewritten")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
