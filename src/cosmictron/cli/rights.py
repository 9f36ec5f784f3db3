"""``grant`` and ``revoke``: the operator gives and takes rights; and ``start`` saving the
operator's token, so the user who starts a server may deploy to it at once.

Python modules run with the server's rights, so deploying needs the right to deploy
(docs/guide/security.md). The server makes an operator identity on its first start;
``cosmictron-cli start`` saves the operator's token in the starting user's CLI settings
for the server's URL, which is why ``start`` then ``deploy`` by the same user needs no
extra step. Other users get an identity (``identity new``), show it (``identity show``),
and the operator runs ``grant deploy <identity>``.
"""

from __future__ import annotations

import click
from rich.console import Console

from cosmictron.cli import nametypes
from cosmictron.cli.client import quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.cli.settings import SavedIdentity, Settings, normalise_server_url
from cosmictron.errors import CosmictronError
from cosmictron.values import Identity

RIGHT_NAMES = ("deploy",)
"""The rights the server knows (``server/rights.py``); only ``deploy`` so far."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
REACHED_AS_LOOPBACK = ("0.0.0.0", "::", "127.0.0.1")
"""Bound addresses a local user reaches through ``127.0.0.1`` or ``localhost``."""


@click.command("grant")
@click.argument("right", type=click.Choice(RIGHT_NAMES))
@click.argument("identity", type=nametypes.IDENTITY)
@server_command
def grant(context: CommandContext, right: str, identity: str) -> None:
    """Grant RIGHT to IDENTITY (64 hex digits); only the server's operator may.

    The right to deploy lets an identity create databases, deploy over its own and
    restore archives: its modules then run with the server's rights. The user to be
    granted finds their identity with `cosmictron-cli identity show`.

    Example: cosmictron-cli grant deploy 5f3a…e1 --server http://127.0.0.1:3000
    """
    reply = context.client.request("PUT", f"/v1/grants/{quote(right)}/{quote(identity)}")

    def human(console: Console) -> None:
        if reply["changed"]:
            console.print(f"Granted {right} to {reply['identity']} on {context.url}.")
        else:
            console.print(f"{reply['identity']} already had the right to {right}.")

    context.output.document(reply, human)


@click.command("revoke")
@click.argument("right", type=click.Choice(RIGHT_NAMES))
@click.argument("identity", type=nametypes.IDENTITY)
@server_command
def revoke(context: CommandContext, right: str, identity: str) -> None:
    """Take RIGHT from IDENTITY; only the server's operator may.

    Databases the identity owns stay, and it may still delete them; deploying over
    them needs the right again.

    Example: cosmictron-cli revoke deploy 5f3a…e1
    """
    reply = context.client.request("DELETE", f"/v1/grants/{quote(right)}/{quote(identity)}")

    def human(console: Console) -> None:
        if reply["changed"]:
            console.print(f"Revoked {right} from {reply['identity']} on {context.url}.")
        else:
            console.print(f"{reply['identity']} did not have the right to {right}.")

    context.output.document(reply, human)


def save_operator_token(url: str, operator: Identity, token: str) -> str:
    """Save the operator's token in this user's CLI settings for the server's URL.

    ``start`` calls it once the server is bound, before it says it is listening, so a
    command run after that line sees the token. A server bound to a loopback or wildcard
    address is reached as ``127.0.0.1`` or ``localhost``, so both spellings are saved.
    A settings file that cannot be written does not stop the server: the returned line
    says so, and where the token is kept instead.
    """
    try:
        settings = Settings.load()
        for server in operator_urls(url):
            settings.identities[server] = SavedIdentity(operator.hex(), token)
        settings.save()
    except (CosmictronError, OSError, ValueError) as exc:
        return f"operator token not saved in the CLI settings ({exc}); it is in the data directory"
    return f"operator {operator.hex()}: token saved for {url} in {settings.path}"


def operator_urls(url: str) -> list[str]:
    """The spellings of ``url`` a user on this machine would type.

    >>> operator_urls("http://0.0.0.0:3000")
    ['http://0.0.0.0:3000', 'http://127.0.0.1:3000', 'http://localhost:3000']
    >>> operator_urls("http://::1:3000")
    ['http://[::1]:3000']
    """
    scheme, _, address = url.partition("://")
    host, _, port = address.rpartition(":")
    spellings = [f"{scheme}://[{host}]:{port}" if ":" in host else url]
    if host in REACHED_AS_LOOPBACK:
        spellings += [f"{scheme}://{name}:{port}" for name in LOOPBACK_HOSTS]
    return sorted({normalise_server_url(spelling) for spelling in spellings})
