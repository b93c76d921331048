"""The router's one decision of its own (routing.py), as a pure function: between the replicas
that hold a request's conditioning decoded and those Serve's default router would pick from,
which to try first.

A replica that holds the conditioning skips a decode (and keeps its memory of voices warm), but
that is worth less than a shorter queue: an XTTS segment waits on every job before it in a busy
replica's batch loop. So the holder goes first only when its queue is no longer than the best
other candidate's; otherwise the request routes as if it had no conditioning.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Id = TypeVar("Id", bound=Hashable)


@dataclass(frozen=True)
class Candidate(Generic[Id]):
    id: Id
    queue_len: int | None
    """Requests in flight on it (Serve's cache or a probe); None: it did not answer."""
    capacity: int
    """Its max_ongoing_requests: at that many it takes no more."""
    holds_key: bool
    """Its latest routing stats list the request's conditioning."""

    @property
    def open(self) -> bool:
        return self.queue_len is not None and self.queue_len < self.capacity


def prefer_holder(candidates: Sequence[Candidate[Id]]) -> list[list[Id]]:
    """Ranks to try in order: `[[holder], [the others, shortest queue first]]` when the least busy
    open holder's queue is no longer than every open non-holder's; `[]` (no preference: route as
    Serve's default router does) when no holder is open or a non-holder has a shorter queue."""
    open_ = [c for c in candidates if c.open]
    holders = [c for c in open_ if c.holds_key]
    if not holders:
        return []
    best = min(holders, key=lambda c: c.queue_len or 0)
    others = sorted((c for c in open_ if c is not best), key=lambda c: c.queue_len or 0)
    shortest_other = min((c.queue_len or 0 for c in others if not c.holds_key), default=None)
    if shortest_other is not None and (best.queue_len or 0) > shortest_other:
        return []
    return [[best.id], [c.id for c in others]] if others else [[best.id]]
