"""``grant`` and ``revoke`` end to end: the installed CLI, a real server, two users.

The user who ran ``start`` holds the operator's token (``start`` saved it in the
settings directory the CLI tests use, see tests/server/conftest.py); a second settings
directory is a second user with an identity of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from cosmictron.cli.rights import operator_urls
from tests.cli.test_server_commands import ok, one_line_error, run
from tests.server.conftest import EXAMPLE, Server


def test_the_operator_grants_and_revokes_deploy(server: Server, tmp_path: Path) -> None:
    url = server.url
    operator = tmp_path / "config"  # where start saved the operator's token
    user = tmp_path / "user"
    me = json.loads(ok(run("identity", "new", "--server", url, "--json", config=user)))["identity"]
    shown = ok(run("identity", "show", "--server", url, config=user))
    assert "rights    none" in shown
    one_line_error(
        run("deploy", "app", str(EXAMPLE), "--server", url, config=user),
        1,
        "may not deploy database 'app': that needs the right to deploy",
    )
    assert f"Granted deploy to {me} on {url}." in ok(
        run("grant", "deploy", me, "--server", url, config=operator)
    )
    assert "already had the right to deploy" in ok(
        run("grant", "deploy", me, "--server", url, config=operator)
    )
    assert "rights    deploy" in ok(run("identity", "show", "--server", url, config=user))
    assert "Created database 'app'" in ok(
        run("deploy", "app", str(EXAMPLE), "--server", url, config=user)
    )
    # A granted user is not the operator: it may not pass the right on.
    someone = "ab" * 32
    one_line_error(
        run("grant", "deploy", someone, "--server", url, config=user),
        1,
        "only the server's operator may grant the right to deploy",
    )
    revoked = json.loads(
        ok(run("revoke", "deploy", me, "--server", url, "--json", config=operator))
    )
    assert revoked == {"right": "deploy", "identity": me, "granted": False, "changed": True}
    assert "did not have the right to deploy" in ok(
        run("revoke", "deploy", me, "--server", url, config=operator)
    )
    one_line_error(
        run("deploy", "app", str(EXAMPLE), "--server", url, config=user),
        1,
        f"cosmictron-cli grant deploy {me}",
    )
    assert "Deleted database 'app'" in ok(
        run("delete", "app", "--yes", "--server", url, config=user)
    )


def test_grant_refusals_are_one_line(server: Server, tmp_path: Path) -> None:
    operator = tmp_path / "config"
    one_line_error(
        run("grant", "deploy", "not-hex", "--server", server.url, config=operator),
        2,  # a usage error: checked before anything is sent (cosmictron.names)
        "identity 'not-hex' is not valid: use 64 hexadecimal digits",
    )
    one_line_error(
        run("grant", "root", "ab" * 32, "--server", server.url, config=operator),
        2,
        "'root' is not 'deploy'",
    )
    one_line_error(
        run("revoke", "deploy", "ab" * 32, "--server", server.url, config=tmp_path / "nobody"),
        1,
        "only the server's operator may revoke the right to deploy",
    )


def test_start_saves_the_operator_token_under_every_local_spelling() -> None:
    import doctest

    import cosmictron.cli.rights

    assert doctest.testmod(cosmictron.cli.rights).failed == 0
    assert operator_urls("http://127.0.0.1:3000") == [
        "http://127.0.0.1:3000",
        "http://localhost:3000",
    ]
    assert operator_urls("http://10.1.2.3:8080") == ["http://10.1.2.3:8080"]
