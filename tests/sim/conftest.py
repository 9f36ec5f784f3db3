"""Options for the seeded simulations: ``pytest tests/sim --seed N`` replays one seed."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--seed",
        type=int,
        default=None,
        help="run the simulations with this one seed (printed by a failure) instead of a range",
    )


@pytest.fixture
def chosen_seed(request: pytest.FixtureRequest) -> int | None:
    """The ``--seed`` given on the command line, or ``None`` to run the usual range."""
    seed: int | None = request.config.getoption("seed")
    return seed
