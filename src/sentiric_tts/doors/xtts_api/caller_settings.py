"""xtts-api-server's TTS settings, kept per caller.

The original keeps one set of settings for the whole server: SillyTavern posts its sliders to
/set_tts_settings and every later request of every user speaks with them. Here they are the
defaults of the caller who posted them (its API key, or its address when the API is open), so one
caller never changes what another hears.
"""

from __future__ import annotations

from collections import OrderedDict

from pydantic import BaseModel, ConfigDict, Field

from sentiric_tts.engines.base import GenerationParams

MAX_CALLERS = 10_000
"""Callers whose settings are remembered; the least recently used are forgotten beyond it."""


class TtsSettings(BaseModel):
    """What /get_tts_settings shows. The defaults are xtts-api-server's (XTTS v2's own)."""

    model_config = ConfigDict(allow_inf_nan=False)

    temperature: float = 0.75
    length_penalty: float = 1.0
    repetition_penalty: float = 5.0
    top_k: int = 50
    top_p: float = 0.85
    speed: float = 1.0
    enable_text_splitting: bool = True
    stream_chunk_size: int = 100


class TtsSettingsBody(BaseModel):
    """POST /set_tts_settings. As SillyTavern sends it: numbers may come as strings ("0.75");
    a field left out keeps the caller's current value. The ranges are xtts-api-server's, except
    that top_k 0 (the low end of SillyTavern's slider) turns top-k sampling off, and that
    repetition_penalty starts at 1 (our engines' floor, and the low end of that slider)."""

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")

    temperature: float | None = Field(None, ge=0.01, le=1.0)
    speed: float | None = Field(None, ge=0.2, le=2.0)
    length_penalty: float | None = Field(None, ge=-10.0, le=10.0)
    repetition_penalty: float | None = Field(None, ge=1.0, le=10.0)
    top_p: float | None = Field(None, ge=0.01, le=1.0)
    top_k: int | None = Field(None, ge=0, le=100)
    enable_text_splitting: bool | None = None
    stream_chunk_size: int | None = Field(None, ge=20, le=400)


def generation_params(settings: TtsSettings, explicit: set[str]) -> GenerationParams:
    """The engine's parameters: speed always, sampling only where the caller set it (the engine's
    defaults otherwise, which are the values shown). length_penalty (beam search only),
    enable_text_splitting (text is always split into sentences) and stream_chunk_size (chunking
    is the service's) are kept and shown but change nothing."""

    def given(name: str, value: float | None) -> float | None:
        return value if name in explicit else None

    top_k = settings.top_k if "top_k" in explicit and settings.top_k > 0 else None
    return GenerationParams(
        speed=settings.speed,
        temperature=given("temperature", settings.temperature),
        top_k=top_k,
        top_p=given("top_p", settings.top_p),
        repetition_penalty=given("repetition_penalty", settings.repetition_penalty),
    )


class CallerSettings:
    """Each caller's settings (and which fields it set), least recently used forgotten first."""

    def __init__(self, max_callers: int = MAX_CALLERS) -> None:
        self._max = max_callers
        self._by_caller: OrderedDict[str, tuple[TtsSettings, frozenset[str]]] = OrderedDict()

    def get(self, client: str) -> tuple[TtsSettings, frozenset[str]]:
        found = self._by_caller.get(client)
        if found is None:
            return TtsSettings(), frozenset()
        self._by_caller.move_to_end(client)
        return found

    def update(self, client: str, body: TtsSettingsBody) -> TtsSettings:
        current, explicit = self.get(client)
        changes = body.model_dump(exclude_none=True)
        updated = current.model_copy(update=changes)
        self._by_caller[client] = (updated, explicit | changes.keys())
        self._by_caller.move_to_end(client)
        while len(self._by_caller) > self._max:
            self._by_caller.popitem(last=False)
        return updated
