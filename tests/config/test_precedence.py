"""The generic precedence rule in cosmictron.config, independent of any layer."""

from __future__ import annotations

import doctest

import pytest

import cosmictron.config
from cosmictron.config import read_environment, resolve_levels
from cosmictron.errors import ConfigError

PROFILES = {"small": {"a": 1, "b": 1}, "large": {"a": 9, "b": 9}}


def test_doctests() -> None:
    assert doctest.testmod(cosmictron.config).failed == 0


def test_default_profile_applies_when_nothing_is_set() -> None:
    assert resolve_levels([("flag", {}), ("env", {})], PROFILES, "small") == {"a": 1, "b": 1}


def test_levels_apply_lowest_first() -> None:
    levels = [("flag", {"a": 3}), ("env", {"a": 2, "b": 2}), ("file", {"profile": "large"})]
    assert resolve_levels(levels, PROFILES, "small") == {"a": 3, "b": 2}


def test_higher_profile_resets_lower_fields() -> None:
    levels = [("flag", {"profile": "large"}), ("file", {"a": 5})]
    assert resolve_levels(levels, PROFILES, "small") == {"a": 9, "b": 9}


def test_unknown_profile_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"'huge' \(from env\); valid profiles: small, large"):
        resolve_levels([("env", {"profile": "huge"})], PROFILES, "small")


def test_read_environment_ignores_empty_values() -> None:
    names = {"X_A": "a", "X_B": "b"}
    assert read_environment({"X_A": "1", "X_B": ""}, names) == {"a": "1"}
