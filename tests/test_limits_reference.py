"""docs/reference/limits.md lists every limit in ``cosmictron.limits`` with its default.

Each public number in ``limits.py`` must have a row ``| `name` | default | ...`` whose
default cell starts with the current value (thousands separated by commas, any note
after a space), every row must name a limit that exists, and an override named in a
row must be ``COSMICTRON_<NAME>``. So a limit added, renamed or retuned without its row
fails here, naming the row to write. The pages that point readers at the limits must
link to the page.
"""

from __future__ import annotations

import re
from pathlib import Path

from cosmictron import limits

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference" / "limits.md"
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| ([^|]+) \| [^|]+ \| ([^|]+) \|", re.MULTILINE)


def public_limits() -> dict[str, int | float]:
    return {
        name: value
        for name, value in vars(limits).items()
        if not name.startswith("_")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }


def rows() -> dict[str, tuple[str, str]]:
    return {
        m.group(1): (m.group(2).strip(), m.group(3).strip()) for m in ROW.finditer(PAGE.read_text())
    }


def documented_number(cell: str) -> float:
    return float(cell.split(" ")[0].replace(",", ""))


def test_every_limit_has_a_row_with_its_current_default() -> None:
    documented = rows()
    missing = [
        f"| `{name}` | {value:,} | ... |"
        for name, value in public_limits().items()
        if name not in documented
    ]
    assert not missing, "docs/reference/limits.md lacks rows for:\n" + "\n".join(missing)
    wrong = {
        name: (documented[name][0], value)
        for name, value in public_limits().items()
        if documented_number(documented[name][0]) != value
    }
    assert not wrong, f"defaults in docs/reference/limits.md differ from limits.py: {wrong}"


def test_every_row_names_a_limit_and_its_real_override() -> None:
    known = public_limits()
    for name, (_, override) in rows().items():
        assert name in known, f"docs/reference/limits.md has a row for no limit: {name}"
        if override.startswith("`COSMICTRON_"):
            assert override == f"`COSMICTRON_{name.upper()}`", (name, override)


def test_the_pages_about_limits_link_to_the_reference() -> None:
    for page, target in [
        ("docs/index.md", "reference/limits.md"),
        ("docs/reference/http.md", "limits.md"),
        ("docs/guide/security.md", "../reference/limits.md"),
    ]:
        assert f"]({target}" in (ROOT / page).read_text(), f"{page} does not link {target}"
