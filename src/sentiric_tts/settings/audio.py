"""The audio the service sends: loudness, joins, guards and the rates it may be resampled to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import field_validator

from sentiric_tts.settings.fields import CommaSeparatedInts, SettingsGroup, setting

if TYPE_CHECKING:
    from sentiric_tts.synthesis.render import RunawayGuard
    from sentiric_tts.synthesis.stream import PostProcessing

SUPPORTED_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
RUNAWAY_FLOOR_S = 3.0
"""Audio any sentence may last, however short its text, before the runaway guard cuts it."""


class AudioSettings(SettingsGroup):
    title = "Audio out"

    loudness_normalize: bool = setting(
        True,
        env="TTS_LOUDNESS_NORMALIZE",
        description="Normalise loudness (EBU R128 measurement) to the target below.",
    )
    loudness_target_lufs: float = setting(
        -20.0,
        env="TTS_LOUDNESS_TARGET_LUFS",
        ge=-40.0,
        le=-5.0,
        description="Target integrated loudness, in LUFS (-20 leaves speech's ~18 dB crest "
        "factor under the ceiling; -23 is broadcast R128, -16 is loud).",
    )
    true_peak_ceiling_dbtp: float = setting(
        -1.5,
        env="TTS_TRUE_PEAK_CEILING_DBTP",
        ge=-12.0,
        le=0.0,
        description="True-peak ceiling of the limiter, in dBTP.",
    )
    sentence_pause_ms: float = setting(
        200.0,
        env="TTS_SENTENCE_PAUSE_MS",
        ge=0.0,
        le=2000.0,
        description="Silence between sentences, in milliseconds.",
    )
    crossfade_ms: float = setting(
        10.0,
        env="TTS_CROSSFADE_MS",
        ge=1.0,
        le=100.0,
        description="Fade at every segment boundary, in milliseconds.",
    )
    runaway_seconds_per_char: float = setting(
        0.3,
        env="TTS_RUNAWAY_SECONDS_PER_CHAR",
        gt=0.0,
        description="Runaway guard: a sentence may last at most 3 s + this many seconds per "
        "character (a CJK character counts 3, a sign read aloud 5; divided by the speed); longer "
        "audio is cut and logged.",
    )
    sample_rates: CommaSeparatedInts = setting(
        SUPPORTED_SAMPLE_RATES,
        env="TTS_SAMPLE_RATES",
        description="Sample rates a request may ask for (comma-separated, among "
        f"{', '.join(map(str, SUPPORTED_SAMPLE_RATES))}); a request that names none gets the "
        "engine's own rate.",
    )

    @field_validator("sample_rates", mode="after")
    @classmethod
    def _supported_rates(cls, rates: tuple[int, ...]) -> tuple[int, ...]:
        if not rates:
            raise ValueError("name at least one sample rate")
        unsupported = sorted(set(rates) - set(SUPPORTED_SAMPLE_RATES))
        if unsupported:
            raise ValueError(
                f"unsupported sample rate(s) {unsupported}; choose among {list(SUPPORTED_SAMPLE_RATES)}"
            )
        return tuple(sorted(set(rates)))

    # Factories import what they build when called: reading the settings alone (the container's
    # health probe does, every few seconds) stays light.

    def post_processing(self) -> PostProcessing:
        from sentiric_tts.synthesis.stream import PostProcessing

        return PostProcessing(
            normalize_loudness=self.loudness_normalize,
            target_lufs=self.loudness_target_lufs,
            true_peak_dbtp=self.true_peak_ceiling_dbtp,
            sentence_pause_ms=self.sentence_pause_ms,
            crossfade_ms=self.crossfade_ms,
        )

    def runaway_guard(self) -> RunawayGuard:
        from sentiric_tts.synthesis.render import RunawayGuard

        return RunawayGuard(floor_s=RUNAWAY_FLOOR_S, seconds_per_char=self.runaway_seconds_per_char)
