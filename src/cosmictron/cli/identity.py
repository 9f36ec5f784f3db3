"""``identity new`` and ``identity show``: the identity the CLI acts as, per server."""

from __future__ import annotations

import click
from rich.console import Console

from cosmictron.cli.session import Session, server_command
from cosmictron.errors import InvalidRequest, NotFound


@click.group("identity")
def identity() -> None:
    """Get and show the identity the CLI acts as on a server.

    A server issues an identity and a token that proves it (POST /v1/identity). The
    CLI saves the token per server URL in cli.toml, and sends it with every request to
    that server: the identity that first deploys a database owns it.

    Example: cosmictron-cli identity new --server http://127.0.0.1:3000
    """


@identity.command("new")
@click.option(
    "--default",
    "make_default",
    is_flag=True,
    help="Also make this server the default for every command.",
)
@server_command
def new(session: Session, make_default: bool) -> None:
    """Obtain a new identity from the server and save its token (replacing any saved one).

    The first server you save an identity for also becomes the default server.

    Example: cosmictron-cli identity new --server http://127.0.0.1:3000 --default
    """
    replaced = session.saved
    if make_default or session.settings.default_server is None:
        session.settings.default_server = session.url
    saved = session.obtain_identity()
    document = {
        "server": session.url,
        "identity": saved.identity,
        "default_server": session.settings.default_server,
        "config_file": str(session.settings.path),
    }

    def human(console: Console) -> None:
        console.print(f"New identity on {session.url}: {saved.identity}")
        if replaced is not None:
            console.print(f"It replaces {replaced.identity} for this server.")
        console.print(f"Saved in {session.settings.path}.")
        if session.settings.default_server == session.url:
            console.print(f"Default server: {session.url}")

    session.output.document(document, human)


@identity.command("show")
@server_command
def show(session: Session) -> None:
    """Show the identity saved for the server, after checking the server accepts it.

    Example: cosmictron-cli identity show
    """
    saved = session.saved
    if saved is None:
        raise NotFound(
            f"no identity saved for {session.url}; "
            f"run: cosmictron-cli identity new --server {session.url}"
        )
    reply = session.client.request("GET", "/v1/identity")
    if reply.get("identity") != saved.identity:
        raise InvalidRequest(
            f"the server reads the saved token as identity {reply.get('identity')}, not "
            f"{saved.identity}; run: cosmictron-cli identity new --server {session.url}"
        )
    operator = bool(reply.get("operator"))
    rights = [str(right) for right in reply.get("rights", [])]
    document = {
        "server": session.url,
        "identity": saved.identity,
        "verified": True,
        "operator": operator,
        "rights": rights,
        "default_server": session.settings.default_server,
        "config_file": str(session.settings.path),
    }

    def human(console: Console) -> None:
        console.print(f"server    {session.url}")
        console.print(f"identity  {saved.identity}")
        console.print("verified  yes (the server accepts the saved token)")
        held = ", ".join(rights) or "none (the operator grants them: grant deploy)"
        console.print(f"rights    {held}" + (" (the server's operator)" if operator else ""))
        console.print(f"saved in  {session.settings.path}")

    session.output.document(document, human)
