"""The options every server command shares, and what they resolve to.

``server_command`` adds ``--server`` and ``--json`` to a command and passes it one
``CommandContext``: the resolved server URL, the saved settings, the client (with the
saved token for that server, if any) and the ``Output``. (It was called ``Session``;
that word now means nothing in the CLI, see docs/glossary.md.) Click accepts options anywhere among
the arguments, so ``call --server URL db reducer`` and ``call db reducer --server URL``
both work, as DESIGN.md §6 asks.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from cosmictron.cli.client import ServerClient, ServerError, normalise_server_url
from cosmictron.cli.output import Output
from cosmictron.cli.settings import SavedIdentity, Settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CommandContext:
    """One command's view of the world: which server, which identity, how to print."""

    url: str
    settings: Settings
    client: ServerClient
    output: Output

    @property
    def saved(self) -> SavedIdentity | None:
        """The identity saved for this server, if any."""
        return self.settings.identities.get(self.url)

    def obtain_identity(self) -> SavedIdentity:
        """Ask the server for a new identity, save it for this server, and use it."""
        reply = self.client.request("POST", "/v1/identity")
        saved = SavedIdentity(str(reply["identity"]), str(reply["token"]))
        self.settings.identities[self.url] = saved
        self.settings.save()
        self.client.token = saved.token
        return saved


def server_command(function: F) -> F:
    """Add ``--server`` and ``--json``; call ``function(context, **arguments)``."""

    @click.option(
        "--server",
        "server_flag",
        metavar="URL",
        default=None,
        help="Server to talk to [default: $COSMICTRON_SERVER, else the saved default, "
        "else http://127.0.0.1:3000].",
    )
    @click.option("--json", "json_mode", is_flag=True, help="Print JSON for programs.")
    @functools.wraps(function)
    def wrapper(server_flag: str | None, json_mode: bool, **arguments: Any) -> Any:
        settings = Settings.load()
        chosen = settings.server_url(server_flag, os.environ.get("COSMICTRON_SERVER"))
        try:
            url = normalise_server_url(chosen)
        except ValueError as exc:
            hint = "--server" if server_flag is not None else _source_of(settings)
            raise click.BadParameter(str(exc), param_hint=hint) from None
        saved = settings.identities.get(url)
        client = ServerClient(url, saved.token if saved else None)
        context = CommandContext(url, settings, client, Output(json_mode))
        try:
            return function(context, **arguments)
        except ServerError as exc:
            if exc.code == "unauthenticated" and context.client.token is not None:
                fix = f"run: cosmictron-cli identity new --server {url}"
                raise ServerError(exc.status, exc.code, f"{exc} (the saved token; {fix})") from None
            raise

    return wrapper  # type: ignore[return-value]


def _source_of(settings: Settings) -> str:
    if os.environ.get("COSMICTRON_SERVER"):
        return "COSMICTRON_SERVER"
    return f"default_server in {settings.path}"
