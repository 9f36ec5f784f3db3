"""A real server and Debian's Chromium driven by Playwright, for the console's tests.

Playwright's own browser download cannot work on our machines, so the tests drive the
system Chromium (``/usr/bin/chromium``, Debian's ``chromium``; ``scripts/test`` installs
it when missing) through ``executable_path``. Where no Chromium or no Playwright can be
had, the tests are skipped, saying which. As root Chromium needs ``--no-sandbox``; the
other flags keep it from reaching for Google's hosts, which a closed network refuses.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import STARTED, Server, start_server, stop_server

APP = Path(__file__).with_name("app.py")
DOC_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "guide" / "console"
"""The screenshots the guide shows: the tests write them here with COSMICTRON_UPDATE_DOCS=1
(as tests/test_transcripts.py does the docs' transcripts), else into their temp folder."""
AXE = Path(__file__).resolve().parents[2] / "console" / "node_modules" / "axe-core" / "axe.min.js"

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    found = os.environ.get("COSMICTRON_CHROMIUM") or shutil.which("chromium")
    return found or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("no Playwright: pip install -e '.[test]' installs it")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: install Debian's chromium (scripts/test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=FLAGS, chromium_sandbox=False
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("console") / "server-data"
    # The ledger on, for the audit page (a --profile flag would override the environment).
    env = {"COSMICTRON_SIGNING": "checkpoint", "COSMICTRON_FSYNC_POLICY": "never"}
    running = start_server(data, env=env)
    # Shared by this module's tests (a deploy per test would slow them): taken off the
    # list tests/conftest.py kills after each test; stopped here instead.
    STARTED.remove(running.process)
    yield running
    out = stop_server(running)
    running.output.append(out)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("COSMICTRON_UPDATE_DOCS") == "1":
        DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOC_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")
