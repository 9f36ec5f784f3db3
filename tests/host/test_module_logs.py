"""Module logs are stored as NDJSON, rotated by size, and read back after a restart."""

from __future__ import annotations

import json
from typing import Any

from cosmictron import limits

MODULE = """
import logging
log = logging.getLogger(__name__)

@reducer
def say(ctx: ReducerContext, text: str) -> None:
    log.info(text)

@reducer
def fail(ctx: ReducerContext) -> None:
    raise RuntimeError("no")
"""


def test_lines_survive_a_restart_and_failures_are_logged(open_db: Any, tmp_path: Any) -> None:
    db = open_db(MODULE)
    db.call("say", "first")
    try:
        db.call("fail")
    except Exception:
        pass
    db.close()
    again = open_db(path=tmp_path / "data")
    lines = again.logs()
    assert [(line["level"], line["reducer"]) for line in lines] == [
        ("INFO", "say"),
        ("ERROR", "fail"),
    ]
    assert "RuntimeError: no" in lines[1]["message"]
    assert again.logs(level="error") == lines[1:]
    assert again.logs(num_lines=0) == []
    stored = (tmp_path / "data" / "logs" / "module.log").read_text().splitlines()
    assert [json.loads(line)["message"] for line in stored] == ["first", lines[1]["message"]]


def test_files_rotate_past_the_size_limit(open_db: Any, tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(limits, "module_log_file_bytes_max", 400)
    monkeypatch.setattr(limits, "module_log_files_max", 2)
    db = open_db(MODULE)
    for number in range(40):
        db.call("say", f"line {number:03d} " + "x" * 40)
    directory = tmp_path / "data" / "logs"
    names = sorted(path.name for path in directory.iterdir())
    assert names == ["module.log", "module.log.1", "module.log.2"]
    for path in directory.iterdir():
        assert path.stat().st_size <= 400
    db.close()
    kept = [line["message"][:8] for line in open_db(path=tmp_path / "data").logs()]
    assert kept[-1] == "line 039" and kept == sorted(kept)  # oldest files dropped, order kept
    assert "line 000" not in kept


def test_a_torn_last_line_is_skipped_on_reopen(open_db: Any, tmp_path: Any) -> None:
    db = open_db(MODULE)
    db.call("say", "whole")
    db.close()
    with open(tmp_path / "data" / "logs" / "module.log", "a") as handle:
        handle.write('{"ts_us": 1, "lev')
    reopened = open_db(path=tmp_path / "data")
    assert [line["message"] for line in reopened.logs()] == ["whole"]
    reopened.call("say", "after")
    reopened.close()
    assert [line["message"] for line in open_db(path=tmp_path / "data").logs()] == [
        "whole",
        "after",
    ]
