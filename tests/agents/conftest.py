from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cosmictron import Database, DurabilityConfig
from tests.agents.modules import AGENT_APP, seed


@pytest.fixture
def app_path(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(AGENT_APP)
    return path


@pytest.fixture
def db(tmp_path: Path, app_path: Path) -> Iterator[Database]:
    database = Database.open(
        tmp_path / "data", app_path, durability=DurabilityConfig.from_profile("development")
    )
    seed(database.call)
    yield database
    database.close()
