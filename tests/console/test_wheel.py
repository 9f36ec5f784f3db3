"""The wheel built from a clean checkout carries the web console (issue 20): the files
``server/console.py`` serves are package data, so ``pip install cosmictron`` needs no Node."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cosmictron.server.console import STATIC

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_from_a_clean_checkout_contains_the_console(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no clean checkout to build the wheel from")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    # The committed tree only (what a fresh clone has): `git archive HEAD`, unpacked.
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(checkout)], input=archive, check=True)
    out = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps",
         "--quiet", "-w", str(out), str(checkout)],
        capture_output=True,
        text=True,
        env={**os.environ, "COSMICTRON_PURE": "1"},  # no compiled hot path: faster, same data
        timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("cosmictron-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"cosmictron/server/static/console/{p.name}" for p in STATIC.iterdir()}
    assert {"index.html", "console.js", "console.css"} <= {p.name for p in STATIC.iterdir()}
    assert expected <= names, sorted(expected - names)
    with zipfile.ZipFile(wheel) as opened:
        for name in expected:
            assert opened.read(name) == (STATIC / name.rsplit("/", 1)[1]).read_bytes()
