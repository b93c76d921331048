"""The Engine deployment's router without a cluster: its choice among candidates (affinity.py), the
routing-stats format and registry (replica_stats.py), and the router class itself (routing.py)
over stand-in replicas that answer queue-length probes."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import pytest

from sentiric_tts.cluster import replica_stats
from sentiric_tts.cluster.affinity import Candidate, prefer_holder
from sentiric_tts.cluster.replica_stats import ReplicaStamp, ReplicaStats, conditioning_key, digest_key


def candidate(name: str, queue: int | None, holds: bool, capacity: int = 16) -> Candidate[str]:
    return Candidate(name, queue, capacity, holds)


# --- affinity.prefer_holder ---


def test_a_holder_no_busier_than_the_others_goes_first_the_others_after() -> None:
    ranks = prefer_holder([candidate("a", 1, False), candidate("h", 1, True), candidate("b", 3, False)])
    assert ranks == [["h"], ["a", "b"]]


def test_an_idle_holder_wins_over_an_idle_other() -> None:
    assert prefer_holder([candidate("a", 0, False), candidate("h", 0, True)]) == [["h"], ["a"]]


def test_a_busier_holder_gives_way_to_the_default_choice() -> None:
    assert prefer_holder([candidate("a", 0, False), candidate("h", 1, True)]) == []


def test_the_least_busy_of_several_holders_is_chosen() -> None:
    ranks = prefer_holder([candidate("h1", 2, True), candidate("h2", 1, True), candidate("a", 1, False)])
    assert ranks == [["h2"], ["a", "h1"]]


def test_no_holder_full_holders_and_silent_holders_mean_no_preference() -> None:
    assert prefer_holder([candidate("a", 0, False), candidate("b", 2, False)]) == []
    assert prefer_holder([candidate("a", 5, False), candidate("h", 4, True, capacity=4)]) == []
    assert prefer_holder([candidate("a", 5, False), candidate("h", None, True)]) == []
    assert prefer_holder([]) == []


def test_others_that_did_not_answer_or_are_full_do_not_count_against_the_holder() -> None:
    ranks = prefer_holder(
        [candidate("a", None, False), candidate("b", 1, False, capacity=1), candidate("h", 3, True)]
    )
    assert ranks == [["h"]]


# --- the routing stats a replica reports ---


def test_routing_stats_round_trip_and_name_conditionings_by_their_dump() -> None:
    data = b"a conditioning dump"
    assert conditioning_key(data) == digest_key(hashlib.sha256(data).digest())
    assert len(conditioning_key(data)) == replica_stats.KEY_CHARS
    stats = ReplicaStats(
        2, {"completed": 5, "failed": 1, "cancelled": 0}, 1.5, 3.25, 4, frozenset({"ab", "cd"})
    )
    sent = stats.to_routing_stats()
    assert stats.to_routing_stats() == sent  # nothing moves while idle: Serve broadcasts no change
    assert ReplicaStats.from_routing_stats(sent) == stats


@pytest.mark.parametrize(
    "reported",
    [
        None,
        {},  # Serve's value before the first call
        {"jobs_in_flight": 1},  # keys missing
        {**ReplicaStats().to_routing_stats(), "segments": 3},
        {**ReplicaStats().to_routing_stats(), "conditionings": "ab"},
        {**ReplicaStats().to_routing_stats(), "jobs_in_flight": "many"},
    ],
)
def test_missing_or_foreign_routing_stats_read_as_none(reported: dict[str, Any] | None) -> None:
    assert ReplicaStats.from_routing_stats(reported) is None


def test_the_registry_keeps_each_deployments_latest_replicas_only() -> None:
    deployment = f"test-{uuid.uuid4().hex}"
    a, b = ReplicaStamp("a", "n1"), ReplicaStamp("b", "n2")
    assert replica_stats.latest(deployment) == {}
    replica_stats.publish(deployment, {a: ReplicaStats(1), b: ReplicaStats(2)})
    replica_stats.publish(deployment, {b: ReplicaStats(0)})  # a is gone
    assert replica_stats.latest(deployment) == {b: ReplicaStats(0)}


# --- the router class over stand-in replicas ---

serve_common = pytest.importorskip("ray.serve._private.common", reason="Ray Serve is not installed")


class StandIn:
    """What the router reads of a RunningReplica, and a queue-length probe that answers."""

    def __init__(self, name: str, queue_len: int, stats: dict[str, Any]) -> None:
        deployment = serve_common.DeploymentID(name="Engine", app_name="unit")
        self.replica_id = serve_common.ReplicaID(unique_id=name, deployment_id=deployment)
        self.node_id = f"node-{name}"
        self.availability_zone = None
        self.multiplexed_model_ids: set[str] = set()
        self.max_ongoing_requests = 16
        self.routing_stats = stats
        self.queue_len = queue_len

    async def get_queue_len(self, *, deadline_s: float) -> int:
        return self.queue_len


def _request(key: str | None) -> Any:
    from ray.serve._private.common import RequestMetadata
    from ray.serve._private.request_router.common import PendingRequest

    metadata = RequestMetadata(request_id="r", internal_request_id=uuid.uuid4().hex, call_method="synthesize")
    return PendingRequest(args=[], kwargs={} if key is None else {"conditioning_key": key}, metadata=metadata)


def _chosen(ranks: list[list[StandIn]]) -> list[list[str]]:
    return [[r.replica_id.unique_id for r in rank] for rank in ranks]


def test_the_router_prefers_the_holder_unless_busier_and_publishes_every_replicas_figures() -> None:
    from ray.serve._private.common import DeploymentHandleSource, DeploymentID

    from sentiric_tts.cluster.routing import LatentAffinityRouter

    key = conditioning_key(b"voice")

    async def scenario() -> None:
        router = LatentAffinityRouter(
            deployment_id=DeploymentID(name="Engine", app_name="unit"),
            handle_source=DeploymentHandleSource.UNKNOWN,
            use_replica_queue_len_cache=False,  # every choice probes the stand-ins
        )
        holder = StandIn("h", 0, ReplicaStats(0, conditionings=frozenset({key})).to_routing_stats())
        other = StandIn(
            "o", 0, ReplicaStats(0, {"completed": 7, "failed": 0, "cancelled": 0}).to_routing_stats()
        )
        fresh = StandIn("f", 0, {})  # has not reported yet
        router.update_replicas([holder, other, fresh])  # type: ignore[list-item]
        await asyncio.sleep(0)  # the base class probes new replicas in a task

        # The voice's key: the idle holder first, ahead of any idle replica.
        for _ in range(10):
            ranks = _chosen(await router.choose_replicas(router._replicas_list, _request(key)))
            assert ranks[0] == ["h"], ranks
        # Busier than the default pair's best: the default pair (two of the three, the holder
        # maybe among them, left to the shorter-queue choice).
        holder.queue_len = 2
        for _ in range(10):
            ranks = _chosen(await router.choose_replicas(router._replicas_list, _request(key)))
            assert len(ranks) == 1 and len(ranks[0]) == 2, ranks
        # No key (or a key nobody holds): the default pair, every replica eventually.
        seen: set[str] = set()
        for request_key in [None, "0" * replica_stats.KEY_CHARS] * 20:
            ranks = _chosen(await router.choose_replicas(router._replicas_list, _request(request_key)))
            assert len(ranks) == 1 and len(ranks[0]) == 2, ranks
            seen.update(ranks[0])
        assert seen == {"h", "o", "f"}

        # Figures for the replicas that reported, under their own ids; a replica gone is dropped.
        deployment = replica_stats.deployment_key("unit", "Engine")
        latest = replica_stats.latest(deployment)
        assert set(latest) == {ReplicaStamp("h", "node-h"), ReplicaStamp("o", "node-o")}
        assert latest[ReplicaStamp("o", "node-o")].segments["completed"] == 7
        router.update_replicas([other, fresh])  # type: ignore[list-item]
        assert set(replica_stats.latest(deployment)) == {ReplicaStamp("o", "node-o")}
        ranks = _chosen(await router.choose_replicas(router._replicas_list, _request(key)))
        assert sorted(ranks[0]) == ["f", "o"]  # the holder is gone: no preference left

    asyncio.run(scenario())
