"""Run the doctests of the query layer: the rules' and helpers' examples are tests too."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cosmictron.query

MODULES = [
    info.name for info in pkgutil.walk_packages(cosmictron.query.__path__, "cosmictron.query.")
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests_pass(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} doctest failures"
