"""The Engine deployment's request router: Serve's power of two choices on queue length, and a
cloned voice's segment preferably to a replica that holds its conditioning decoded.

app.py and serve.yaml set it through `request_router_config` (`request_router_class:
sentiric_tts.cluster.routing:LatentAffinityRouter`, routing stats every second). Every handle to
the Engine deployment (the ingress's RemoteEngine) routes with one instance of it, in the
ingress's process.

- A request with no `conditioning_key` keyword (Piper, built-in voices, describe and cloning
  calls) routes as Serve's default router does: two replicas at random, the shorter queue.
- A `synthesize` call carrying `conditioning_key` (remote_engine.py) also looks at the replicas
  whose latest routing stats (EngineReplica.record_routing_stats) list that key. The least busy
  of them goes first when its queue is no longer than the best of the default pair's
  (affinity.prefer_holder); otherwise the default pair. Queue lengths come from Serve's cache, or
  a probe, as in the default router.
- Every update of the replica set or of their stats is published to replica_stats, whence the
  ingress's /metrics serves each replica's figures (tts_replica_*).

How Ray 2.60 loads this class: the process that builds the application (Serve's build task,
which imports app.py) cloudpickles it *by value* (`RequestRouterConfig` registers this module
for it), and each handle's process unpickles that copy. So the class keeps no state in this
module's globals; it reaches shared code (affinity, replica_stats: that registry must be the
ingress's own module) through module references, which cloudpickle sends by name and the
ingress imports.

No FIFOMixin: with it, a replica found for one request goes to the oldest request waiting,
which would hand the holder of one voice's conditioning to another voice's request. The base
class gives it to the request it was chosen for.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from ray.serve.request_router import LocalityMixin, PendingRequest, ReplicaID, RequestRouter, RunningReplica

from sentiric_tts.cluster import affinity, replica_stats

log = logging.getLogger(__name__)

CONDITIONING_KEY = "conditioning_key"
"""The keyword argument of EngineReplica.synthesize the router reads (the replica ignores it)."""

_HOLDERS_PROBED = 2
"""Holders compared at most per request (random ones): a voice held everywhere must not make
every request probe every replica."""


class LatentAffinityRouter(LocalityMixin, RequestRouter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holders: dict[str, set[ReplicaID]] = {}  # conditioning key -> replicas that hold it

    # --- what the replicas report ---

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        """Serve calls this with every replica it routes to, whenever the set or any replica's
        routing stats changed."""
        super().update_replicas(replicas)
        self._index(replicas)

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        self._index(list(self.curr_replicas.values()))

    def _index(self, replicas: Sequence[RunningReplica]) -> None:
        holders: dict[str, set[ReplicaID]] = {}
        live: dict[replica_stats.ReplicaStamp, replica_stats.ReplicaStats] = {}
        for replica in replicas:
            stats = replica_stats.ReplicaStats.from_routing_stats(replica.routing_stats)
            if stats is None:  # not reported yet: routed to as by the default router
                continue
            live[replica_stats.ReplicaStamp(replica.replica_id.unique_id, replica.node_id or "")] = stats
            for key in stats.conditionings:
                holders.setdefault(key, set()).add(replica.replica_id)
        self._holders = holders
        replica_stats.publish(
            replica_stats.deployment_key(self._deployment_id.app_name, self._deployment_id.name), live
        )

    # --- choosing ---

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        pair = self._default_pair(pending_request)
        key = pending_request.kwargs.get(CONDITIONING_KEY) if pending_request is not None else None
        holders = self._holders_of(key) if isinstance(key, str) else []
        if not holders:
            return [pair] if pair else []
        compared = {r.replica_id: r for r in [*holders, *pair]}
        queue_lens = await self._queue_lens(list(compared.values()))
        ranks = affinity.prefer_holder(
            [
                affinity.Candidate(
                    replica_id,
                    queue_lens.get(replica_id),
                    replica.max_ongoing_requests,
                    any(h.replica_id == replica_id for h in holders),
                )
                for replica_id, replica in compared.items()
            ]
        )
        if not ranks:
            return [pair] if pair else []
        chosen = [[compared[i] for i in rank if i in self.curr_replicas] for rank in ranks]
        return [rank for rank in chosen if rank]

    def _default_pair(self, pending_request: PendingRequest | None) -> list[RunningReplica]:
        """Serve's power of two choices: two distinct replicas at random (of those on this node
        first, where the handle prefers its own node)."""
        ids = list(self.apply_locality_routing(pending_request=pending_request))
        replicas = self.curr_replicas
        chosen = random.sample(ids, k=min(2, len(ids)))
        return [replicas[i] for i in chosen if i in replicas]

    def _holders_of(self, key: str) -> list[RunningReplica]:
        replicas = self.curr_replicas
        holders = [replicas[i] for i in self._holders.get(key, ()) if i in replicas]
        return random.sample(holders, k=min(_HOLDERS_PROBED, len(holders)))

    async def _queue_lens(self, replicas: list[RunningReplica]) -> dict[ReplicaID, int | None]:
        """Each replica's requests in flight: from Serve's cache where it holds a fresh one, else
        probed (as the default router does; None where a replica does not answer in time)."""
        lens: dict[ReplicaID, int | None] = {}
        unknown = []
        for replica in replicas:
            cached = self.replica_queue_len_cache.get(replica.replica_id) if self._use_cache else None
            if cached is None:
                unknown.append(replica)
            else:
                lens[replica.replica_id] = cached
        if unknown:
            for replica, queue_len in await self._probe_queue_lens(unknown, 0):
                lens[replica.replica_id] = queue_len
        return lens

    @property
    def _use_cache(self) -> bool:
        return bool(self._use_replica_queue_len_cache)
