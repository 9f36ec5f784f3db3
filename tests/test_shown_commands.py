"""Every command the documentation shows is run by a test, or checked here.

Commands are shown in ```` ```console ```` blocks, which ``tests/test_transcripts.py`` runs
against a real server, and in ```` ```sh ```` blocks, which no test runs as they stand:
installing into a virtual environment, the ``scripts/`` that do so, and benchmarks of
minutes. A command in a shell block must be one of the kinds below, each checked as far
as it can be without running it; a ``$ `` line in any other block (```` ```text ````) is
a shown command too. Anything else fails here, so a new page cannot show a
command that no test has seen (turn it into a ``console`` block).

- ``python3 -m venv .venv`` and ``export PATH=…``: the shell's own.
- ``pip install -e SPEC``: the extras SPEC names are in pyproject.toml.
- ``./scripts/NAME``: the script exists, is executable and is valid bash (what the
  scripts do is tested where it is cheap: ``tests/test_examples.py`` runs what
  ``scripts/start`` starts; ``scripts/test`` is CI itself).
- ``.venv/bin/python bench/NAME.py ARGS``: the benchmark exists and its ``--help`` lists
  each option and choice ARGS uses (the ``--quick`` runs are run by tests/test_bench*.py).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache

import pytest

from tests.doc_blocks import ROOT, blocks, pages

SHELL_BLOCKS = ("sh", "bash", "shell")


def shown_commands() -> list[tuple[str, int, str]]:
    """(page, line, command) for every command of every shell block, comments cut and
    continued lines joined."""
    found = []
    for page in pages():
        for block in blocks((ROOT / page).read_text()):
            shell = block.words[:1] in ([kind] for kind in SHELL_BLOCKS)
            if block.words[:1] == ["console"]:
                continue
            pending = ""
            for index, line in enumerate(block.body.splitlines()):
                if not shell and not line.startswith("$ ") and not pending:
                    continue  # in another block, only a `$ ` line is a command
                line = re.sub(r"\s+#.*$", "", line.removeprefix("$ ")).strip()
                if not line:
                    continue
                if line.endswith("\\"):
                    pending += line[:-1] + " "
                    continue
                for part in (pending + line).split("&&"):
                    found.append((page, block.line + index, part.strip()))
                pending = ""
    return found


COMMANDS = shown_commands()


@cache
def extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


@cache
def bench_help(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def check(command: str) -> None:
    words = shlex.split(command)
    if words[:3] == ["python3", "-m", "venv"] or words[:1] == ["export"]:
        return
    if len(words) >= 3 and words[0].endswith("pip") and words[1:3] == ["install", "-e"]:
        spec = words[3]
        named = re.fullmatch(r"\.(?:\[(?P<extras>[\w,-]+)\])?", spec)
        assert named, f"pip installs {spec!r}, not this checkout"
        missing = set((named["extras"] or "").split(",")) - {""} - extras()
        assert not missing, f"extras {sorted(missing)} are not in pyproject.toml"
        return
    if words[0].startswith("./scripts/"):
        script = ROOT / words[0]
        assert script.is_file() and os.access(script, os.X_OK), f"{words[0]} is not executable"
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
        return
    if words[0] == ".venv/bin/python" and words[1].startswith("bench/"):
        assert (ROOT / words[1]).is_file(), f"{words[1]} does not exist"
        help_text = bench_help(words[1].removeprefix("bench/"))
        for word in words[2:]:
            if word.startswith("--"):
                assert word in help_text, f"{words[1]} has no option {word}"
            elif re.fullmatch(r"[a-z][a-z-]*", word) and "{" in help_text:
                assert re.search(rf"[{{,]{word}[,}}]", help_text), f"{words[1]}: no {word!r}"
        return
    raise AssertionError(
        "a shown command no test runs: make its block a ```console transcript "
        "(tests/test_transcripts.py), or add its kind to tests/test_shown_commands.py"
    )


@pytest.mark.parametrize(("page", "line", "command"), COMMANDS)
def test_shown_command_is_checked(page: str, line: int, command: str) -> None:
    try:
        check(command)
    except AssertionError as error:
        pytest.fail(f"{page}:{line} `{command}`: {error}", pytrace=False)


def test_an_unknown_command_is_refused() -> None:
    with pytest.raises(AssertionError, match="no test runs"):
        check("cosmictron-cli start")
    with pytest.raises(AssertionError, match="not in pyproject"):
        check(".venv/bin/pip install -e '.[test,nonesuch]'")
    with pytest.raises(AssertionError, match="no option --fast"):
        check(".venv/bin/python bench/sql.py --fast")
