"""``cosmictron-cli console DATABASE``: the web console's address, with this identity's token.

The token travels in the URL fragment (``#token=...&db=...``), which browsers never
send to a server, so it appears in no server or proxy log; the page moves it into the
tab's ``sessionStorage`` and takes it out of the address bar (docs/guide/console.md).
The address is printed (anyone who sees it can act as this identity until the token
expires: do not paste it into shared places), or opened in the default browser with
``--open``.
"""

from __future__ import annotations

import urllib.parse
import webbrowser

import click
from rich.console import Console

from cosmictron.cli import nametypes
from cosmictron.cli.client import quote
from cosmictron.cli.context import CommandContext, server_command


def console_url(server_url: str, database: str, token: str | None) -> str:
    """The console's address for ``database``, the token (if any) in the fragment."""
    fragment = {"db": database} if token is None else {"token": token, "db": database}
    return f"{server_url.rstrip('/')}/console/#{urllib.parse.urlencode(fragment)}"


@click.command("console")
@click.argument("database", type=nametypes.DATABASE)
@click.option("--open", "open_browser", is_flag=True, help="Open it in the default browser.")
@server_command
def console(context: CommandContext, database: str, open_browser: bool) -> None:
    """Print (or --open) the web console's address for DATABASE, signed in as you.

    Example: cosmictron-cli console quickstart --open
    """
    context.client.request("GET", f"/v1/database/{quote(database)}/schema")  # it exists
    saved = context.saved
    url = console_url(context.url, database, saved.token if saved else None)
    opened = webbrowser.open(url) if open_browser else False

    def human(out: Console) -> None:
        out.print(url, soft_wrap=True, highlight=False)
        if saved is None:
            out.print("no identity saved for this server: the console starts as a fresh one")
        if open_browser and not opened:
            out.print("no browser could be opened: open the address above")

    context.output.document(
        {"database": database, "url": url, "signed_in": saved is not None, "opened": opened},
        human,
    )
