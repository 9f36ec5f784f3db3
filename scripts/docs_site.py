"""MkDocs hooks (``mkdocs.yml``: ``hooks``): error-code pages, and links out of docs/.

Error codes.
Every class of ``CosmictronError`` carries a stable ``code`` (``cosmictron.errors``; a few
layers define their own subclasses, such as the WebSocket's ``protocol_error``). The
pages under ``reference/error-codes/`` are generated at build time from those classes,
their HTTP status and their docstrings, so a new error class gets its page and a removed
one loses it without anyone editing the docs: they cannot drift.
``tests/test_docs_site.py`` checks that every code has its page.

Links out of docs/. Pages link to source files and to the README (``../../src/…``),
which work when the pages are read in the repository but are not part of the site. In
the site such a link becomes the path as code, "(in the repository)", rather than a
broken link or a guessed URL. A link to a file that does not exist anywhere is left
alone, so ``--strict`` still fails on it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECTION = "reference/error-codes"


def _cosmictron() -> Any:
    source = str(ROOT / "src")
    if source not in sys.path:
        sys.path.insert(0, source)
    return importlib.import_module("cosmictron")


def error_classes() -> list[type]:
    """Every subclass of ``CosmictronError`` in the package (itself included), in the
    order of the modules and their source, after importing every module of it."""
    cosmictron = _cosmictron()
    for module in pkgutil.walk_packages(cosmictron.__path__, "cosmictron."):
        importlib.import_module(module.name)
    base = importlib.import_module("cosmictron.errors").CosmictronError
    found: list[type] = []
    pending = [base]
    while pending:
        cls = pending.pop(0)
        if cls in found or not cls.__module__.startswith("cosmictron"):
            continue
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def error_codes() -> dict[str, list[type]]:
    """Each stable ``code`` and the classes that carry it, ordered by code."""
    codes: dict[str, list[type]] = {}
    for cls in error_classes():
        codes.setdefault(cls.code, []).append(cls)  # type: ignore[attr-defined]
    return dict(sorted(codes.items()))


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")


def code_page(code: str, classes: list[type]) -> str:
    """The Markdown page of one error code."""
    statuses = sorted({cls.http_status for cls in classes})  # type: ignore[attr-defined]
    lines = [
        f"# `{code}`",
        "",
        f"HTTP status: {', '.join(str(s) for s in statuses)}. The JSON error body of the HTTP",
        f'API is `{{"error": {{"code": "{code}", "message": …}}}}`; WebSocket replies carry it',
        "as `error_code`; the Python API raises the class below (catch it, or any parent).",
        "",
    ]
    for cls in classes:
        parents = [p.__name__ for p in cls.__mro__[1:] if p.__module__.startswith("cosmictron")]
        lines += [f"## `{cls.__module__}.{cls.__name__}`", ""]
        if parents:
            lines += [f"A kind of: {', '.join(f'`{p}`' for p in parents)}.", ""]
        lines += [inspect.getdoc(cls) or "(no description)", ""]
    lines += [
        "See the [error reference](../errors.md) for how errors reach each kind of caller,",
        "and [all error codes](index.md).",
        "",
    ]
    return "\n".join(lines)


def index_page(codes: dict[str, list[type]]) -> str:
    """The list of every error code, each linked to its page."""
    lines = [
        "# Error codes",
        "",
        "Every error Cosmictron reports carries one of these stable codes. This list and",
        "its pages are generated from the error classes when the site is built.",
        "",
        "| code | HTTP | raised as | what it means |",
        "| --- | --- | --- | --- |",
    ]
    for code, classes in codes.items():
        statuses = ", ".join(sorted({str(c.http_status) for c in classes}))  # type: ignore[attr-defined]
        names = ", ".join(f"`{c.__name__}`" for c in classes)
        lines.append(f"| [`{code}`]({code}.md) | {statuses} | {names} | {_summary(classes[0])} |")
    return "\n".join(lines) + "\n"


def generated_pages() -> dict[str, str]:
    """Every generated page, by its path under docs/."""
    codes = error_codes()
    pages = {f"{SECTION}/index.md": index_page(codes)}
    for code, classes in codes.items():
        pages[f"{SECTION}/{code}.md"] = code_page(code, classes)
    return pages


def on_files(files: Any, config: Any) -> Any:
    """MkDocs event: add the generated pages to the site's files."""
    from mkdocs.structure.files import File

    for path, content in generated_pages().items():
        files.append(File.generated(config, path, content=content))
    return files


LINK = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")


def outside_links(markdown: str, page_path: str, docs_dir: Path) -> str:
    """``markdown`` with its links to repository files outside ``docs_dir`` made plain
    text naming the file (``page_path`` is the page's path under docs/)."""

    def replace(match: re.Match[str]) -> str:
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
            return match[0]
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(page_path), target))
        if not joined.startswith("../"):
            return match[0]  # inside docs/: MkDocs checks it
        in_repository = posixpath.normpath(posixpath.join(docs_dir.name, joined))
        if in_repository.startswith("../") or not (docs_dir.parent / in_repository).exists():
            return match[0]
        text = match["text"]
        shown = f"`{in_repository}`"
        if text.strip("`") == in_repository or text.strip("`") == target:
            return f"{shown} (in the repository)"
        return f"{text} ({shown} in the repository)"

    return LINK.sub(replace, markdown)


FENCE_INFO = re.compile(r"^(?P<fence>```+)(?P<info>[^\n`]*)$", re.MULTILINE)


def plain_fences(markdown: str) -> str:
    """The tests' marks on fenced blocks (``tests/test_docs.py``: ``python run``,
    ``python file=NAME``, ``text output``) in the site's terms: the language alone, and
    a ``file=`` block titled with its file name."""

    def replace(match: re.Match[str]) -> str:
        words = match["info"].split()
        if len(words) < 2:
            return match[0]
        names = [w.removeprefix("file=") for w in words[1:] if w.startswith("file=")]
        title = f' title="{names[0]}"' if names else ""
        return f"{match['fence']}{words[0]}{title}"

    return FENCE_INFO.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: the tests' fence marks made plain, links out of docs/ rewritten."""
    markdown = plain_fences(markdown)
    return outside_links(markdown, page.file.src_uri, Path(config["docs_dir"]))
