"""The placement rule (``cluster/placement.place``): balanced, the same everywhere, sticky."""

from __future__ import annotations

from collections import Counter

from cosmictron.cluster.placement import place


def leaders(placed: dict[str, list[str]]) -> Counter[str]:
    return Counter(nodes[0] for nodes in placed.values())


def test_every_node_computes_the_same_placement_whatever_the_order() -> None:
    names = [f"db{i}" for i in range(30)]
    one = place(names, ["a", "b", "c", "d"])
    two = place(list(reversed(names)), ["d", "c", "b", "a"])
    assert one == two
    assert all(len(nodes) == 3 and len(set(nodes)) == 3 for nodes in one.values())


def test_leaders_and_copies_stay_under_the_cap() -> None:
    names = [f"db{i}" for i in range(100)]
    nodes = [f"n{i}" for i in range(7)]
    placed = place(names, nodes)
    mean = len(names) / len(nodes)
    assert max(leaders(placed).values()) <= 1.25 * mean
    copies = Counter(n for chosen in placed.values() for n in chosen)
    assert max(copies.values()) <= 1.25 * 3 * mean


def test_a_live_leader_keeps_its_database() -> None:
    # One database on two nodes: whoever leads it keeps it (no hand-over for nothing).
    assert place(["app"], ["a", "b"], {"app": "a"})["app"][0] == "a"
    assert place(["app"], ["a", "b"], {"app": "b"})["app"][0] == "b"
    # Its leader gone, it goes to a live node.
    assert place(["app"], ["b", "c"], {"app": "a"})["app"][0] in {"b", "c"}


def test_a_joining_node_takes_its_share_and_only_that_moves() -> None:
    names = [f"db{i}" for i in range(6)]
    on_a = dict.fromkeys(names, "a")  # deployed on a, b just joined
    two = place(names, ["a", "b"], on_a)
    assert leaders(two) == {"a": 3, "b": 3}
    assert all(two[name][0] == "a" for name in names if two[name][0] != "b")
    three = place(names, ["a", "b", "c"], {name: nodes[0] for name, nodes in two.items()})
    assert leaders(three) == {"a": 2, "b": 2, "c": 2}
    moved = [name for name in names if three[name][0] != two[name][0]]
    assert len(moved) == 2 and all(three[name][0] == "c" for name in moved)


def test_a_leaving_node_gives_its_databases_away_and_nothing_else_moves() -> None:
    names = [f"db{i}" for i in range(6)]
    three = place(names, ["a", "b", "c"])
    current = {name: nodes[0] for name, nodes in three.items()}
    two = place(names, ["a", "b"], current)
    for name in names:
        if current[name] != "c":
            assert two[name][0] == current[name]
        else:
            assert two[name][0] in {"a", "b"}
    assert leaders(two) == {"a": 3, "b": 3}


def test_fewer_nodes_than_copies_and_no_nodes() -> None:
    assert place(["x"], ["a"]) == {"x": ["a"]}
    assert place(["x"], []) == {}
    assert place([], ["a"]) == {}
