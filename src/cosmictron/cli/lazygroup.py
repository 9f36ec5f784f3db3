"""A click group whose commands are imported only when they are looked up.

Every ``cosmictron-cli`` process runs one command, but importing every command's module
to build the group costs each of them what the heaviest commands need: ``backup`` and
``restore`` load the whole host (query engine, WASM and JS runtimes), ``verify`` and
``export-audit`` the durability layer and the ledger. A ``LazyGroup`` knows each
command's name and where it lives, and imports the module the first time click asks
for that command: to run it, or to show the group's ``--help``, which lists them all.
The pattern is click's own ("Lazily Loading Subcommands" in its documentation).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """A ``click.Group`` with commands given as ``{name: "module:attribute"}``."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_commands.get(cmd_name)
        if target is not None and cmd_name not in self.commands:
            module, _, attribute = target.partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise TypeError(f"{target} is not the click command {cmd_name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)
