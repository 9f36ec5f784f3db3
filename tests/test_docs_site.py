"""The documentation site's generated parts (``scripts/docs_site.py``, ``mkdocs.yml``).

``./scripts/test`` builds the whole site with ``mkdocs build --strict`` (a broken link, a
missing page or a docstring that does not render fails it); these tests check what the
build hooks generate, without a build: a page for every error code, and the rewriting of
the marks and links that only make sense in the repository.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import cosmictron.errors as errors
from cosmictron.errors import CosmictronError

ROOT = Path(__file__).resolve().parent.parent


def docs_site() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_site", ROOT / "scripts/docs_site.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_error_code_has_a_generated_page() -> None:
    site = docs_site()
    pages = site.generated_pages()
    declared = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, CosmictronError) and cls.__module__ == errors.__name__
    ]
    assert len(declared) > 20
    found = site.error_classes()
    # Every class of errors.py, and the subclasses other layers define (protocol_error).
    assert set(declared) <= set(found)
    assert "protocol_error" in {cls.code for cls in found}
    index = pages["reference/error-codes/index.md"]
    for cls in found:
        page = pages[f"reference/error-codes/{cls.code}.md"]
        assert f"# `{cls.code}`" in page and f".{cls.__name__}`" in page
        assert str(cls.http_status) in page
        first_line = (inspect.getdoc(cls) or "").splitlines()[0]
        assert first_line in page, (cls, first_line)
        assert f"[`{cls.code}`]({cls.code}.md)" in index


def test_the_site_config_uses_the_hooks_and_lists_the_error_codes() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert "scripts/docs_site.py" in config and "strict: true" in config
    assert "reference/error-codes/index.md" in config
    nav_pages = [
        line.split(": ", 1)[1]
        for line in config.splitlines()
        if line.strip().startswith("- ") and line.rstrip().endswith(".md")
    ]
    for page in nav_pages:
        if not page.startswith("reference/error-codes/"):
            assert (ROOT / "docs" / page).exists(), page
    # Every hand-written page is in the navigation (the build only notes omitted ones).
    written = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert written - set(nav_pages) == set()


def test_links_out_of_docs_become_repository_paths() -> None:
    site = docs_site()
    text = (
        "See [the format](../../src/cosmictron/errors.py), [`README.md`](../../README.md),"
        " [a page](../guide/sdk.md#module-updates), [a site](https://example.com) and"
        " [gone](../../src/nowhere.py)."
    )
    rewritten = site.outside_links(text, "reference/errors.md", ROOT / "docs")
    assert "the format (`src/cosmictron/errors.py` in the repository)" in rewritten
    assert "`README.md` (in the repository)" in rewritten
    assert "[a page](../guide/sdk.md#module-updates)" in rewritten
    assert "[a site](https://example.com)" in rewritten
    assert "[gone](../../src/nowhere.py)" in rewritten  # left for --strict to refuse


def test_test_marks_on_fences_become_plain_languages() -> None:
    site = docs_site()
    text = "```python file=chat.py\nx\n```\n```python run\ny\n```\n```text output\nz\n```\n"
    assert site.plain_fences(text) == (
        '```python title="chat.py"\nx\n```\n```python\ny\n```\n```text\nz\n```\n'
    )


# -- the strict build, on a site of two pages (the whole site is built by scripts/test) ---


def strict_build(tmp_path: Path, page: str) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` as scripts/test runs it, with the project's settings
    (validation, theme, hooks), over a two-page site whose second page is ``page``."""
    yaml = pytest.importorskip("yaml", reason="the docs extra is not installed")
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config.update(
        docs_dir=str(tmp_path / "docs"),
        site_dir=str(tmp_path / "site"),
        nav=[{"Home": "index.md"}, {"Page": "page.md"}],
        plugins=["search"],  # without mkdocstrings: the API pages are not part of this site
        hooks=[str(ROOT / "scripts" / "docs_site.py")],
    )
    (tmp_path / "docs" / "reference").mkdir(parents=True)
    # The generated error-code pages (the hook's) link to the errors reference.
    (tmp_path / "docs" / "reference" / "errors.md").write_text("# Errors\n")
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the page](page.md).\n")
    (tmp_path / "docs" / "page.md").write_text(page)
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    environment = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        [str(ROOT / "scripts" / "docs-build"), "-f", str(tmp_path / "mkdocs.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def test_a_broken_link_fails_the_strict_build_which_prints_only_warnings(tmp_path: Path) -> None:
    """scripts/docs-build (what scripts/test runs): a clean site prints nothing, neither
    MkDocs' INFO lines nor the theme's end-of-life banner; a broken link prints its
    warning and fails. (``mkdocs build --strict --quiet``, which scripts/test ran before,
    passed it: --quiet drops warnings before strict mode counts them.)"""
    good = strict_build(tmp_path / "good", "# Page\n\nBack [home](index.md).\n")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout + good.stderr == ""
    broken = strict_build(tmp_path / "broken", "# Page\n\nSee [nothing](missing.md).\n")
    assert broken.returncode != 0
    assert "WARNING" in broken.stdout and "'missing.md'" in broken.stdout, broken.stdout
    assert "Aborted with 1 warnings in strict mode" in broken.stdout, broken.stdout
    assert "end of life" not in broken.stdout + broken.stderr and "INFO" not in broken.stdout


def test_scripts_build_and_serve_the_site_without_the_theme_s_banner() -> None:
    assert "scripts/docs-build" in (ROOT / "scripts/test").read_text()
    assert "--quiet" not in (ROOT / "scripts/docs-build").read_text().split("set -euo")[1]
    serve = [line for line in (ROOT / "scripts/docs").read_text().splitlines() if "mkdocs" in line]
    assert any("NO_MKDOCS_2_WARNING=1" in line and "serve" in line for line in serve)
