"""``follower.quorate``: when a stream's info is word from a quorum (issue 19, part 6).

A replica is stale once its stream has not answered with a quorum for 3 s; an answer that
counts when it should not makes a stale replica look current (``Cosmictron-Stale: false``
and a ``Staleness`` message saying current while NATS still has no quorum). The cases are
stream infos as nats-py parses them, the first as a real server sent it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from cosmictron.cluster.follower import quorate


def test_an_answer_without_a_stream_leader_is_no_word_from_a_quorum() -> None:
    api = pytest.importorskip("nats.js.api", reason="nats-py is not installed: the cluster extra")

    def info(leader: str | None, *active_ns: int | None) -> Any:
        peers = [
            api.PeerInfo(name=f"n{k}", current=False, active=a) for k, a in enumerate(active_ns)
        ]
        cluster = api.ClusterInfo(leader=leader, name="c", replicas=peers)
        return SimpleNamespace(config=api.StreamConfig(num_replicas=3), cluster=cluster)

    # As a server whose two peers were SIGKILLed answered (test_stale_subscribers.py).
    assert not quorate(info(None, 1_714_292_878, 0))
    assert quorate(info("n0", 1_000_000, 2_000_000))
    assert quorate(info("n0", 1_000_000, 60_000_000_000))  # one peer lost: still a majority
    assert not quorate(info("n0", 60_000_000_000, 60_000_000_000))  # a leader alone
    assert not quorate(info("n0"))  # an R3 stream's leader listing no peers
