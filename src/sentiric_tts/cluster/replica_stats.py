"""What an engine replica reports about itself, and where the ingress keeps the latest reports.

A replica's `record_routing_stats()` (engine_replica.py) returns `ReplicaStats.to_routing_stats()`:
Serve's controller calls it on every replica every `request_routing_stats_period_s` (serve.yaml)
and, when a replica's dict changed, sends the replicas' latest dicts to every handle's request
router. Our router (routing.py) reads the cloned-voice conditionings each replica holds from them,
and publishes every replica's stats here (`publish`), so the ingress's /metrics
(remote_engine.ReplicaCalls) serves figures that are at most a stats period old, for exactly the
replicas Serve is routing to now.

No Ray import: the format and the registry are plain Python, tested without a cluster.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEY_CHARS = 16
"""Hex characters of a conditioning's sha256 that name it in routing stats and requests: 64 bits,
enough to tell apart the few dozen conditionings a replica holds, short enough that 64 of them
(engine_replica._CONDITIONING_ENTRIES) stay a small dict for the controller to broadcast."""

OUTCOMES = ("completed", "failed", "cancelled")


def conditioning_key(data: bytes) -> str:
    """The routing name of a conditioning dump (what the ingress sends and a replica reports)."""
    return digest_key(hashlib.sha256(data).digest())


def digest_key(digest: bytes) -> str:
    """The routing name of a conditioning a replica keys by its dump's full sha256 digest."""
    return digest.hex()[:KEY_CHARS]


@dataclass(frozen=True)
class ReplicaStamp:
    """The first item of every stream: which replica (on which node) took the call. The ingress
    counts calls per replica from it (metrics) and knows the replica is alive."""

    replica: str
    node: str


@dataclass(frozen=True)
class ReplicaStats:
    """One engine replica's own figures, as totals since it started (but `jobs_in_flight` and
    `conditionings`, which are as of now)."""

    jobs_in_flight: int = 0  # its scheduler's jobs, running and waiting
    segments: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    synthesis_seconds: float = 0.0  # wall time of its segments
    audio_seconds: float = 0.0  # audio they produced
    conditioning_decodes: int = 0  # conditioning dumps it decoded (not found in its memory)
    conditionings: frozenset[str] = frozenset()  # keys of the conditionings it holds decoded

    def to_routing_stats(self) -> dict[str, Any]:
        """Plain data for Serve: it compares the dicts (a change is broadcast), so nothing in them
        moves while the replica is idle (no timestamp)."""
        return {
            "jobs_in_flight": self.jobs_in_flight,
            "segments": dict(self.segments),
            "synthesis_seconds": self.synthesis_seconds,
            "audio_seconds": self.audio_seconds,
            "conditioning_decodes": self.conditioning_decodes,
            "conditionings": sorted(self.conditionings),
        }

    @classmethod
    def from_routing_stats(cls, stats: Mapping[str, Any] | None) -> ReplicaStats | None:
        """The stats a replica reported, or None where it reported none yet (Serve's `{}` before
        the first call) or something else (another version's replica): the router then routes
        to it as Serve's default router would, and /metrics has no figures for it."""
        if not stats:
            return None
        try:
            segments = stats["segments"]
            conditionings = stats["conditionings"]
            if not isinstance(segments, Mapping) or not isinstance(conditionings, list | tuple):
                return None
            return cls(
                jobs_in_flight=int(stats["jobs_in_flight"]),
                segments={str(outcome): int(count) for outcome, count in segments.items()},
                synthesis_seconds=float(stats["synthesis_seconds"]),
                audio_seconds=float(stats["audio_seconds"]),
                conditioning_decodes=int(stats["conditioning_decodes"]),
                conditionings=frozenset(str(key) for key in conditionings),
            )
        except (KeyError, TypeError, ValueError):
            return None


def deployment_key(app_name: str, deployment_name: str) -> str:
    """How the router and the ingress's metrics name one deployment in the registry."""
    return f"{app_name}/{deployment_name}"


class _LiveReplicas:
    """The latest stats of each deployment's replicas, as this process's request router last saw
    them: one mapping per deployment, replaced whole on every update, so a replica Serve no longer
    routes to is gone from it at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the router's event loop writes, a /metrics scrape reads
        self._replicas: dict[str, dict[ReplicaStamp, ReplicaStats]] = {}

    def publish(self, deployment: str, replicas: Mapping[ReplicaStamp, ReplicaStats]) -> None:
        with self._lock:
            self._replicas[deployment] = dict(replicas)

    def latest(self, deployment: str) -> dict[ReplicaStamp, ReplicaStats]:
        with self._lock:
            return dict(self._replicas.get(deployment, {}))


_LIVE = _LiveReplicas()


def publish(deployment: str, replicas: Mapping[ReplicaStamp, ReplicaStats]) -> None:
    """Called by the router (routing.py) with every replica it routes to that has stats."""
    _LIVE.publish(deployment, replicas)


def latest(deployment: str) -> dict[ReplicaStamp, ReplicaStats]:
    """What the router last published for `deployment` (empty before it has: a router other than
    ours, or no replica has reported yet)."""
    return _LIVE.latest(deployment)
