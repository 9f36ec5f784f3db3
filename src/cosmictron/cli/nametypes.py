"""Click argument types for names, checked before anything is sent (``cosmictron.names``).

A name the server would refuse is a usage error here (one line, exit 2) rather than a
request: ``cosmictron-cli call "quickstart\\n" add`` never reaches the server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cosmictron import names
from cosmictron.errors import InvalidRequest


class NameType(click.ParamType):
    """A click type that accepts a string only if ``check`` does."""

    def __init__(self, kind: str, check: Callable[[object], str]) -> None:
        self.name = kind
        self._check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return self._check(value)
        except InvalidRequest as exc:
            self.fail(str(exc), param, ctx)


DATABASE = NameType("database", names.check_database)
TABLE = NameType("table", names.check_table)
REDUCER = NameType("reducer", names.check_reducer)
IDENTITY = NameType("identity", names.check_identity_hex)
