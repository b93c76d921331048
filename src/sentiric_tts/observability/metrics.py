"""Prometheus metrics, one registry per runtime (several apps may live in one process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sentiric_tts.synthesis.scheduler import EngineScheduler
    from sentiric_tts.voices.latent_cache import LatentCache

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 60, 120)
_RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)


class _CacheCollector(Collector):
    def __init__(self, cache: LatentCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        hits = CounterMetricFamily("tts_latent_cache_hits", "Cloning conditioning found in the cache.")
        hits.add_metric([], self._cache.hits)
        misses = CounterMetricFamily("tts_latent_cache_misses", "Cloning conditioning computed anew.")
        misses.add_metric([], self._cache.misses)
        yield hits
        yield misses


class ServiceMetrics:
    def __init__(self, scheduler: EngineScheduler, cache: LatentCache) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tts_requests", "HTTP requests by route and status.", ["route", "method", "status"], registry=r
        )
        self.grpc_requests = Counter(
            "tts_grpc_requests", "gRPC calls by method and status code.", ["rpc", "code"], registry=r
        )
        self.wyoming_requests = Counter(
            "tts_wyoming_requests",
            "Wyoming requests (synthesize, streamed synthesize, invalid events) by outcome code.",
            ["event", "code"],
            registry=r,
        )
        self.time_to_first_audio = Histogram(
            "tts_time_to_first_audio_seconds",
            "From request admission to the first audio bytes.",
            ["door"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "tts_synthesis_duration_seconds",
            "Total time of a synthesis request.",
            ["door"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rtf = Histogram(
            "tts_real_time_factor",
            "Synthesis time / audio seconds.",
            ["door"],
            buckets=_RTF_BUCKETS,
            registry=r,
        )
        self.audio_seconds = Counter("tts_audio_seconds", "Seconds of audio produced.", ["door"], registry=r)
        self.engine_errors = Counter("tts_engine_errors", "Engine failures while synthesizing.", registry=r)
        self.cancellations = Counter(
            "tts_cancellations", "Synthesis stopped early (client gone, deadline).", ["reason"], registry=r
        )
        self.refusals = Counter(
            "tts_refusals", "Requests refused before synthesis (queue full, limits).", ["reason"], registry=r
        )
        self.active_streams = Gauge("tts_active_streams", "Synthesis responses in progress.", registry=r)
        queue = Gauge("tts_queue_depth", "Synthesis jobs admitted (running and waiting).", registry=r)
        queue.set_function(lambda: scheduler.jobs_in_flight)
        r.register(_CacheCollector(cache))
