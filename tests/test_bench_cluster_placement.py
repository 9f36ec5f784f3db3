"""``bench/cluster_placement.py --quick`` runs and its placement keeps its promises.

The simulation is deterministic (fixed seed, a hash), so these are properties of the
placement rule docs/design/cluster.md proposes, not timings: the capped rule keeps every
node under its cap, moves about as little as rendezvous hashing must, and ``mod N`` (the
peer) moves most databases on any change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_the_placement_simulation_reports_load_and_movement(
    run_quick_bench: Callable[[str], tuple[dict[str, Any], str]],
) -> None:
    figures, stdout = run_quick_bench("cluster_placement.py")
    results, settings = figures["results"], figures["settings"]
    capped, plain, modulo = results["rendezvous_capped"], results["rendezvous"], results["modulo"]
    cap = 1 + settings["epsilon"]
    assert capped["copies"]["max_over_mean"] <= cap + 1e-9
    assert capped["leaders"]["max_over_mean"] <= cap + 0.1  # the leader cap may yield
    minimum = figures["scale"]["join_minimum_moved"]
    assert plain["join"]["copies_moved"] < 2 * minimum
    assert capped["join"]["copies_moved"] < 3 * minimum
    assert modulo["join"]["copies_moved"] > 0.5
    assert figures["scale"]["streams_per_server"] == settings["databases"] * 3 / settings["nodes"]
    assert "ratio" in stdout
