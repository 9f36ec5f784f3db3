"""Names a package exports but imports only on first use (PEP 562 ``__getattr__``).

A package's ``__init__.py`` is imported by every import of any of its submodules: if it
imports its whole layer eagerly, a process that wants one small module pays for all of
them. ``cosmictron``'s face pulls in the host, the query engine, the durability layer and
the WASM and JS runtimes; ``cosmictron.client``'s pulls in aiohttp. Every
``cosmictron-cli`` process imports both faces on its way to the module it needs, so the
names there are loaded on first use instead, where one use is all it costs.

Imports nothing of Cosmictron's.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A ``__getattr__`` and a ``__dir__`` for ``package``'s ``__init__.py``.

    ``names`` maps each public name to the module defining it, ``"cosmictron.host"``, or
    to ``"module:attribute"`` when the package exports it under another name. A name
    is imported on its first use and then stored in the package, so later uses are
    plain attribute reads; a name not in ``names`` raises ``AttributeError`` as for
    any module, which ``from package import submodule`` needs.
    """

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
