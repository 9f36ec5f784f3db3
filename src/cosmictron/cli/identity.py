"""``identity new`` and ``identity show``: the identity the CLI acts as, per server."""

from __future__ import annotations

import click
from rich.console import Console

from cosmictron.cli.context import CommandContext, server_command
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
def new(context: CommandContext, make_default: bool) -> None:
    """Obtain a new identity from the server and save its token (replacing any saved one).

    The first server you save an identity for also becomes the default server.

    Example: cosmictron-cli identity new --server http://127.0.0.1:3000 --default
    """
    replaced = context.saved
    if make_default or context.settings.default_server is None:
        context.settings.default_server = context.url
    saved = context.obtain_identity()
    document = {
        "server": context.url,
        "identity": saved.identity,
        "default_server": context.settings.default_server,
        "config_file": str(context.settings.path),
    }

    def human(console: Console) -> None:
        console.print(f"New identity on {context.url}: {saved.identity}")
        if replaced is not None:
            console.print(f"It replaces {replaced.identity} for this server.")
        console.print(f"Saved in {context.settings.path}.")
        if context.settings.default_server == context.url:
            console.print(f"Default server: {context.url}")

    context.output.document(document, human)


@identity.command("show")
@server_command
def show(context: CommandContext) -> None:
    """Show the identity saved for the server, after checking the server accepts it.

    Example: cosmictron-cli identity show
    """
    saved = context.saved
    if saved is None:
        raise NotFound(
            f"no identity saved for {context.url}; "
            f"run: cosmictron-cli identity new --server {context.url}"
        )
    reply = context.client.request("GET", "/v1/identity")
    if reply.get("identity") != saved.identity:
        raise InvalidRequest(
            f"the server reads the saved token as identity {reply.get('identity')}, not "
            f"{saved.identity}; run: cosmictron-cli identity new --server {context.url}"
        )
    operator = bool(reply.get("operator"))
    rights = [str(right) for right in reply.get("rights", [])]
    document = {
        "server": context.url,
        "identity": saved.identity,
        "verified": True,
        "operator": operator,
        "rights": rights,
        "default_server": context.settings.default_server,
        "config_file": str(context.settings.path),
    }

    def human(console: Console) -> None:
        console.print(f"server    {context.url}")
        console.print(f"identity  {saved.identity}")
        console.print("verified  yes (the server accepts the saved token)")
        held = ", ".join(rights) or "none (the operator grants them: grant deploy)"
        console.print(f"rights    {held}" + (" (the server's operator)" if operator else ""))
        console.print(f"saved in  {context.settings.path}")

    context.output.document(document, human)
