"""The documentation's examples run, and its links lead somewhere.

How examples are marked. In every page (README.md and docs/) a fenced block whose
info string is

- ```` ```python run ```` is executed;
- ```` ```python file=NAME ```` is written to the file ``NAME`` (a module the page's
  examples open). Several blocks with the same ``NAME`` are joined in page order, so a
  page may introduce one module in parts.

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

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]

# Every page with a runnable block is run; every page's links are checked.
EXAMPLE_PAGES = [page for page in PAGES if "```python run" in (ROOT / page).read_text()]

LINKED_PAGES = PAGES

FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")

SCRIPT_TIMEOUT_S = 120


def marked_blocks(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Split a page into its ``file=`` blocks (by name) and ``run`` blocks (with line)."""
    files: dict[str, str] = {}
    runs: list[tuple[int, str]] = []
    for match in FENCE.finditer(text):
        words = match["info"].split()
        if not words or words[0] != "python":
            continue
        line = text.count("\n", 0, match.start("body")) + 1
        body = match["body"]
        if "run" in words[1:]:
            runs.append((line, body))
        for word in words[1:]:
            if word.startswith("file="):
                name = word.removeprefix("file=")
                files[name] = files.get(name, "") + body + "\n"
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
    script = "".join(f"# --- {page}, line {line}\n{body}\n" for line, body in runs)
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


def relative_links(page: Path) -> list[str]:
    targets = []
    for match in LINK.finditer(page.read_text()):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        targets.append(target.split("#", 1)[0])
    return targets


@pytest.mark.parametrize("page", LINKED_PAGES)
def test_links_exist(page: str) -> None:
    source = ROOT / page
    missing = [target for target in relative_links(source) if not (source.parent / target).exists()]
    assert not missing, f"{page} links to files that do not exist: {missing}"
