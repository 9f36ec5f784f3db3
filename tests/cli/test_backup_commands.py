"""``cosmictron-cli backup`` and ``restore`` through the installed binary and a real server.

Settings live in a temporary ``COSMICTRON_CONFIG_DIR`` per identity, so a second
directory is a second user. Each error case checks the one line on stderr and the exit
code.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from tests.cli.test_server_commands import granted, ok, one_line_error, run
from tests.server.conftest import EXAMPLE, Server


def deploy_with_tasks(server: Server, config: Path, count: int) -> None:
    ok(run("deploy", "--server", server.url, "qs", str(EXAMPLE), config=config))
    for n in range(count):
        ok(run("call", "qs", "add_task", f"task {n}", str(n), config=config, server=server.url))


def test_backup_then_restore_and_restore_to_an_offset(server: Server, tmp_path: Path) -> None:
    config = tmp_path / "config"
    deploy_with_tasks(server, config, 4)
    backup_file = tmp_path / "qs.backup"
    human = ok(run("backup", "qs", str(backup_file), config=config, server=server.url))
    assert f"Backed up 'qs' at tx_offset 5 into {backup_file}" in human and "verified" in human
    assert not backup_file.with_name("qs.backup.part").exists()

    restored = ok(run("restore", str(backup_file), "copy", config=config, server=server.url))
    assert "Restored database 'copy' at tx_offset 5 (backup cut 5)." in restored
    earlier = run(
        "restore", str(backup_file), "early", "--to-offset", "2", "--json",
        config=config, server=server.url,
    )  # fmt: skip
    assert json.loads(ok(earlier))["tx_offset"] == 2
    rows = ok(
        run("sql", "early", "SELECT title FROM task", "--json", config=config, server=server.url)
    )
    assert len(json.loads(rows)["rows"]) == 2
    as_json = json.loads(
        ok(
            run(
                "backup",
                "copy",
                str(tmp_path / "c.backup"),
                "--json",
                config=config,
                server=server.url,
            )
        )
    )
    assert as_json["cut_offset"] == 5 and as_json["database"] == "copy"


def test_only_the_owner_may_back_up_and_a_taken_name_is_refused(
    server: Server, tmp_path: Path
) -> None:
    owner, stranger = tmp_path / "owner", tmp_path / "stranger"
    granted(server, owner)
    deploy_with_tasks(server, owner, 1)
    granted(server, stranger)  # may deploy and restore; does not own 'qs'

    refused = run("backup", "qs", str(tmp_path / "x.backup"), config=stranger, server=server.url)
    one_line_error(refused, 1, "only the owner of database 'qs' may back it up")
    assert not (tmp_path / "x.backup").exists() and not (tmp_path / "x.backup.part").exists()

    ok(run("backup", "qs", str(tmp_path / "qs.backup"), config=owner, server=server.url))
    taken = run("restore", str(tmp_path / "qs.backup"), "qs", config=stranger, server=server.url)
    one_line_error(taken, 1, "database 'qs' already exists")
    past = run(
        "restore", str(tmp_path / "qs.backup"), "later", "--to-offset", "50",
        config=owner, server=server.url,
    )  # fmt: skip
    one_line_error(past, 1, "holds offsets 0 to 2")
    both = run(
        "restore", str(tmp_path / "qs.backup"), "x", "--to-offset", "1", "--to-time",
        "2026-01-01T00:00:00Z", config=owner, server=server.url,
    )  # fmt: skip
    one_line_error(both, 2, "give --to-offset or --to-time, not both")


def test_a_damaged_backup_is_refused_in_one_line(server: Server, tmp_path: Path) -> None:
    config = tmp_path / "config"
    deploy_with_tasks(server, config, 2)
    backup_file = tmp_path / "qs.backup"
    ok(run("backup", "qs", str(backup_file), config=config, server=server.url))
    data = backup_file.read_bytes()
    backup_file.write_bytes(data[: len(data) // 3])
    truncated = run("restore", str(backup_file), "copy", config=config, server=server.url)
    one_line_error(truncated, 1, "truncated")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        log_member = next(m for m in tar.getmembers() if m.name.startswith("log/"))
    damaged = bytearray(data)
    damaged[log_member.offset_data + 30] ^= 0x01
    backup_file.write_bytes(bytes(damaged))
    refused = run("restore", str(backup_file), "copy", config=config, server=server.url)
    one_line_error(refused, 1, "log/00000000000000000001.log does not match its SHA-256")
    listed = json.loads(ok(run("list", "--json", config=config, server=server.url)))
    assert [d["name"] for d in listed["databases"]] == ["qs"]


def test_restore_to_a_time(server: Server, tmp_path: Path) -> None:
    config = tmp_path / "config"
    deploy_with_tasks(server, config, 3)
    backup_file = tmp_path / "qs.backup"
    ok(run("backup", "qs", str(backup_file), config=config, server=server.url))
    reply = run(
        "restore", str(backup_file), "then", "--to-time", "2000-01-01T00:00:00Z", "--json",
        config=config, server=server.url,
    )  # fmt: skip
    # Before every transaction: the empty database, whose @init then runs again.
    assert json.loads(ok(reply))["tx_offset"] == 1
    bad = run(
        "restore", str(backup_file), "then2", "--to-time", "noon",
        config=config, server=server.url,
    )  # fmt: skip
    one_line_error(bad, 1, "is not an RFC 3339 time")
