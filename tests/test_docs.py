"""The documentation's examples run, and its links lead somewhere.

How examples are marked. In every page (README.md and docs/) a fenced block whose
info string is

- ```` ```python run ```` is executed;
- ```` ```python file=NAME ```` is written to the file ``NAME`` (a module the page's
  examples open). Several blocks with the same ``NAME`` are joined in page order, so a
  page may introduce one module in parts. ``file=NAME`` works on a block of any language
  (```` ```js file=agent.js ````), for a module a page's transcript deploys.

- ```` ```text output ```` right after a ``run`` block is what that block prints: its
  standard output is compared with it (``tests/doc_blocks.py``: ``…`` matches any text,
  a difference fails with a diff, ``COSMICTRON_UPDATE_DOCS=1`` writes the real output).

```` ```console ```` blocks are CLI transcripts, run by ``tests/test_transcripts.py``.
Any other block (plain ```` ```python ````, ```` ```sh ````, ```` ```toml ````) is shown,
not run. The info string was chosen over an HTML comment because it travels with the
block when text is moved, and renderers still highlight it as Python (they read only the
first word).

For each page, every ``file=`` block is written into a fresh temporary directory, then
all ``run`` blocks are joined, in page order, into one script that runs there in a new
interpreter: a tutorial's later steps use the names its earlier steps defined, as a
reader's interpreter session would. The examples check themselves with ``assert``; a
failure prints the script with the page's line numbers, so the broken block is easy to
find.

Links: every relative link in those pages must name a file or directory that exists,
so a renamed page cannot leave the README pointing at nothing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.doc_blocks import (
    HOW_TO_UPDATE,
    UPDATE,
    PageEdits,
    blocks,
    difference,
    lines_match,
    normalise,
    pages,
    updated,
)

ROOT = Path(__file__).resolve().parent.parent

PAGES = pages()

# Every page with a runnable block is run; every page's links are checked.
EXAMPLE_PAGES = [page for page in PAGES if "```python run" in (ROOT / page).read_text()]

LINKED_PAGES = PAGES

LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")

SCRIPT_TIMEOUT_S = 120
SEPARATOR = "\x1e doc block "  # printed before each run block, to split the output


@dataclass
class ShownOutput:
    """A ```` ```text output ```` block: what the run block before it prints."""

    run: int  # index of its run block
    line: int
    expected: list[str]
    span: tuple[int, int]


def shown_outputs(text: str) -> list[ShownOutput]:
    """The output blocks of a page, each with the index of the run block it follows."""
    found = []
    runs = -1
    previous_was_run = False
    for block in blocks(text):
        if block.words[:1] == ["python"] and "run" in block.words[1:]:
            runs += 1
            previous_was_run = True
            continue
        if block.words[:2] == ["text", "output"]:
            if not previous_was_run:
                raise AssertionError(f"line {block.line}: an output block follows a run block")
            span = (block.start, block.start + len(block.body))
            found.append(ShownOutput(runs, block.line, block.body.splitlines(), span))
        previous_was_run = False
    return found


def marked_blocks(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Split a page into its ``file=`` blocks (by name) and ``run`` blocks (with line)."""
    files: dict[str, str] = {}
    runs: list[tuple[int, str]] = []
    for block in blocks(text):
        words = block.words
        if not words:
            continue
        if words[0] == "python" and "run" in words[1:]:
            runs.append((block.line, block.body))
        for word in words[1:]:
            if word.startswith("file="):
                name = word.removeprefix("file=")
                files[name] = files.get(name, "") + block.body + "\n"
    return files, runs


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_examples_run(page: str, tmp_path: Path) -> None:
    text = (ROOT / page).read_text()
    files, runs = marked_blocks(text)
    assert runs, f"{page} has no ```python run blocks; mark its examples"
    for name, body in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    script = "".join(
        f"# --- {page}, line {line}\nprint({SEPARATOR + str(index)!r}, flush=True)\n{body}\n"
        for index, (line, body) in enumerate(runs)
    )
    (tmp_path / "doc_examples.py").write_text(script)
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("COSMICTRON_")
    }
    # Examples may import their modules; a PYTHONPATH the tests run with (a worktree's
    # src) stays, so the servers the examples start run the code under test.
    inherited = [
        os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    environment["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *inherited])
    # A server an example starts saves its operator's token in the CLI settings: keep
    # those away from the user's.
    environment["COSMICTRON_CONFIG_DIR"] = str(tmp_path / "config")
    result = subprocess.run(
        [sys.executable, "-W", "error", "doc_examples.py"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
    )
    if result.returncode != 0:
        numbered = "\n".join(
            f"{number:4} {line}" for number, line in enumerate(script.splitlines(), 1)
        )
        pytest.fail(
            f"the examples in {page} failed:\n{result.stderr}\n--- script ---\n{numbered}",
            pytrace=False,
        )
    check_shown_outputs(page, text, result.stdout, [(str(tmp_path), ".")])


def check_shown_outputs(
    page: str, text: str, stdout: str, replacements: list[tuple[str, str]]
) -> None:
    """Compare each ```` ```text output ```` block with what its run block printed."""
    printed: dict[int, str] = {}
    for part in stdout.split(SEPARATOR)[1:]:
        index, _, output = part.partition("\n")
        printed[int(index)] = output
    edits = PageEdits(page)
    problems = []
    for shown in shown_outputs(text):
        actual = normalise(printed.get(shown.run, ""), replacements)
        if UPDATE:
            edits.replace(*shown.span, updated(shown.expected, actual))
        elif not lines_match(shown.expected, actual):
            problems.append(difference(f"{page}:{shown.line}", shown.expected, actual))
    edits.write()
    if problems:
        pytest.fail("\n\n".join(problems) + "\n\n" + HOW_TO_UPDATE, pytrace=False)


def relative_links(page: Path) -> list[str]:
    targets = []
    for match in LINK.finditer(page.read_text()):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        targets.append(target.split("#", 1)[0])
    return targets


def generated_pages() -> set[Path]:
    """The pages the site's build generates (``scripts/docs_site.py``), which a page may
    link to although no file holds them."""
    spec = importlib.util.spec_from_file_location("docs_site", ROOT / "scripts/docs_site.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {(ROOT / "docs" / path).resolve() for path in module.generated_pages()}


@pytest.mark.parametrize("page", LINKED_PAGES)
def test_links_exist(page: str) -> None:
    source = ROOT / page
    generated = generated_pages() if "error-codes/" in source.read_text() else set()
    missing = [
        target
        for target in relative_links(source)
        if not (source.parent / target).exists()
        and (source.parent / target).resolve() not in generated
    ]
    assert not missing, f"{page} links to files that do not exist: {missing}"


def test_readme_example_runs_twice(tmp_path: Path) -> None:
    """The README's example works on every run in the same directory, not just the first
    (a second run reopens ``./data``, whose task is already there), and prints the same."""
    text = (ROOT / "README.md").read_text()
    files, runs = marked_blocks(text)
    assert runs, "README.md has no ```python run block"
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    script = "".join(body + "\n" for _, body in runs)
    (tmp_path / "readme.py").write_text(script)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COSMICTRON_")}
    outputs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-W", "error", "readme.py"],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] != ""
