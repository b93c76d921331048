"""What one request may ask for, and how many requests are admitted: per client and overall."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiric_tts.settings.fields import SettingsGroup, setting

if TYPE_CHECKING:
    from sentiric_tts.callers import ClientLimits


class RequestLimitSettings(SettingsGroup):
    title = "Request limits"

    max_text_chars: int = setting(
        5000, env="TTS_MAX_TEXT_CHARS", ge=1, description="Longest accepted text, in characters."
    )
    ssml_max_bytes: int = setting(
        65536,
        env="TTS_SSML_MAX_BYTES",
        ge=256,
        description="Largest accepted SSML document, in bytes (UTF-8).",
    )
    max_audio_seconds: float = setting(
        600.0,
        env="TTS_MAX_AUDIO_SECONDS",
        gt=0,
        description="Most audio one request may make, in seconds (speech and pauses): a request "
        "estimated longer is refused before synthesis (422 audio_too_long), and one whose speech "
        "runs past it while synthesized is stopped with the same error.",
    )
    max_pause_seconds: float = setting(
        60.0,
        env="TTS_MAX_PAUSE_SECONDS",
        ge=0,
        description="Most silence one request may ask for, in seconds: SSML breaks, sentence, "
        "paragraph and clause pauses together (422 pauses_too_long).",
    )


class AdmissionSettings(SettingsGroup):
    title = "Admission"

    rate_limit_per_minute: int = setting(
        0,
        env="TTS_RATE_LIMIT_PER_MINUTE",
        ge=0,
        description="Synthesis requests per minute per API key (or client address when the API "
        "is open), as a token bucket; 0 turns it off.",
    )
    rate_limit_burst: int = setting(
        10,
        env="TTS_RATE_LIMIT_BURST",
        ge=1,
        description="Requests a client may make at once before the rate applies.",
    )
    max_streams_per_client: int = setting(
        0,
        env="TTS_MAX_STREAMS_PER_CLIENT",
        ge=0,
        description="Synthesis requests in flight per API key or client address; 0: no limit.",
    )
    max_queued_requests: int = setting(
        64,
        env="TTS_MAX_QUEUED_REQUESTS",
        ge=1,
        description="Synthesis requests admitted at once (running and waiting); beyond it: 503.",
    )
    stream_buffer_chunks: int = setting(
        4,
        env="TTS_STREAM_BUFFER_CHUNKS",
        ge=1,
        description="Chunks synthesized ahead of a slow client before its synthesis pauses.",
    )
    request_timeout_seconds: float = setting(
        300.0,
        env="TTS_REQUEST_TIMEOUT_SECONDS",
        gt=0,
        description="Deadline for one synthesis request, queueing included.",
    )
    retry_after_seconds: int = setting(
        2,
        env="TTS_RETRY_AFTER_SECONDS",
        ge=1,
        description="Retry-After sent with 503 when the queue is full.",
    )

    def client_limits(self) -> ClientLimits:
        from sentiric_tts.callers import ClientLimits  # when called: see audio.py

        return ClientLimits(self.rate_limit_per_minute, self.rate_limit_burst, self.max_streams_per_client)
