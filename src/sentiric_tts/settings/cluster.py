"""How the ingress of a Ray Serve cluster talks to its engine replicas (sentiric_tts/cluster/)."""

from __future__ import annotations

from sentiric_tts.settings.fields import SettingsGroup, setting


class ClusterSettings(SettingsGroup):
    title = "Cluster (Ray Serve)"

    engine_retries: int = setting(
        2,
        env="TTS_CLUSTER_ENGINE_RETRIES",
        ge=0,
        le=10,
        description="On a Ray Serve cluster: how many more times the ingress sends a text segment "
        "to an engine replica when the replica it chose died or was unreachable before the first "
        "audio came back (Serve routes the retry to a live replica). After the first audio, a "
        "lost replica ends the stream with the engine-failure error of its door.",
    )
    retry_backoff_seconds: float = setting(
        0.25,
        env="TTS_CLUSTER_RETRY_BACKOFF_SECONDS",
        ge=0,
        le=30,
        description="Pause before each such retry, doubled each time: the time Serve's router "
        "takes to learn that a replica is gone.",
    )
    call_timeout_seconds: float = setting(
        300.0,
        env="TTS_CLUSTER_CALL_TIMEOUT_SECONDS",
        gt=0,
        description="How long the ingress waits for an engine replica to answer a one-off call "
        "(its description at start, which waits for a replica to load its model; cloning "
        "conditioning).",
    )
