"""The durability line ``start`` prints: the settings a database without a config.toml
gets, and the level they came from (the server's own resolution is the reference)."""

from __future__ import annotations

import pytest

from cosmictron.cli.durability_line import durability_line
from cosmictron.errors import ConfigError


def test_the_default_is_production() -> None:
    line = durability_line(None, {})
    assert line.startswith("durability: the production profile (fsync always)")


def test_the_flag_beats_the_environment() -> None:
    line = durability_line("development", {"COSMICTRON_FSYNC_POLICY": "always"})
    assert line == "durability: the development profile for every database (--profile): fsync never"


def test_an_environment_policy_is_named_with_its_variable() -> None:
    line = durability_line(None, {"COSMICTRON_FSYNC_POLICY": "periodic"})
    assert line.startswith(
        "durability: fsync periodic for every database (COSMICTRON_FSYNC_POLICY)"
    )


def test_an_environment_profile_and_policy() -> None:
    environ = {"COSMICTRON_PERFORMANCE_PROFILE": "balanced", "COSMICTRON_FSYNC_POLICY": "never"}
    assert durability_line(None, environ) == (
        "durability: the balanced profile for every database "
        "(COSMICTRON_PERFORMANCE_PROFILE, COSMICTRON_FSYNC_POLICY): fsync never"
    )


def test_a_bad_setting_is_the_servers_error() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'bogus'"):
        durability_line(None, {"COSMICTRON_PERFORMANCE_PROFILE": "bogus"})
