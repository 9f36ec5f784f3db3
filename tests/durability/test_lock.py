"""The data directory lock: a second process opening the same directory is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from cosmictron.durability import PersistenceConfig, PersistenceLayer

from .conftest import OpenLayer, recover_all

SECOND_OPENER = textwrap.dedent(
    """
    import sys
    from cosmictron.durability import PersistenceConfig, PersistenceLayer
    from cosmictron.errors import DatabaseInUse
    try:
        PersistenceLayer(PersistenceConfig(sys.argv[1])).close()
    except DatabaseInUse as exc:
        print(exc)
        sys.exit(3)
    """
)


def open_from_another_process(data_dir: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SECOND_OPENER, data_dir],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_second_process_gets_database_in_use(open_layer: OpenLayer, data_dir: str) -> None:
    layer = open_layer()
    recover_all(layer)
    result = open_from_another_process(data_dir)
    assert result.returncode == 3, result.stderr
    assert f"data directory {data_dir} is in use by process {os.getpid()}" in result.stdout
    layer.close()
    assert open_from_another_process(data_dir).returncode == 0


def test_creates_the_data_directory_and_writes_the_pid(tmp_path: object) -> None:
    data_dir = os.path.join(str(tmp_path), "a", "b", "data")
    layer = PersistenceLayer(PersistenceConfig(data_dir))
    try:
        assert sorted(os.listdir(data_dir)) == ["LOCK", "log", "snapshots"]
        with open(os.path.join(data_dir, "LOCK")) as file:
            assert file.read().strip() == str(os.getpid())
    finally:
        layer.close()
