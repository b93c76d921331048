"""Every setting of the service, in groups: `settings.<group>.<field>`."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sentiric_tts.settings.audio import AudioSettings
from sentiric_tts.settings.cluster import ClusterSettings
from sentiric_tts.settings.doors import (
    GradioSettings,
    GrpcSettings,
    OpenAISettings,
    ServerSettings,
    WebSocketSettings,
    WyomingSettings,
)
from sentiric_tts.settings.engines import EngineSettings, PiperSettings, XttsSettings
from sentiric_tts.settings.fields import ENV_PREFIX, SettingsGroup
from sentiric_tts.settings.first_audio import FirstAudioSettings
from sentiric_tts.settings.limits import AdmissionSettings, RequestLimitSettings
from sentiric_tts.settings.paths import PathSettings
from sentiric_tts.settings.security import SecuritySettings
from sentiric_tts.settings.sources import flat_names, flat_sources, route_flat_names, variables_model
from sentiric_tts.settings.voices import VoiceSettings

if TYPE_CHECKING:
    from sentiric_tts.engines.base import EngineKind
    from sentiric_tts.synthesis.scheduler import WorkerLayout


class Settings(BaseSettings):
    """Read from the flat environment variables `TTS_*` and a `.env` file in the working folder
    (the environment wins); built in code from groups or from the same flat names in lower case
    (`Settings(grpc_port=1)`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="forbid", frozen=True
    )

    # In the order of the generated documentation.
    server: ServerSettings = Field(default_factory=ServerSettings)
    grpc: GrpcSettings = Field(default_factory=GrpcSettings)
    gradio: GradioSettings = Field(default_factory=GradioSettings)
    websocket: WebSocketSettings = Field(default_factory=WebSocketSettings)
    wyoming: WyomingSettings = Field(default_factory=WyomingSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    engines: EngineSettings = Field(default_factory=EngineSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    first_audio: FirstAudioSettings = Field(default_factory=FirstAudioSettings)
    xtts: XttsSettings = Field(default_factory=XttsSettings)
    piper: PiperSettings = Field(default_factory=PiperSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    voices: VoiceSettings = Field(default_factory=VoiceSettings)
    limits: RequestLimitSettings = Field(default_factory=RequestLimitSettings)
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, *flat_sources(_VARIABLES, env_settings, dotenv_settings))

    @model_validator(mode="before")
    @classmethod
    def _flat_names_into_groups(cls, data: Any) -> Any:
        return route_flat_names(data, GROUP_CLASSES, FLAT_NAMES) if isinstance(data, dict) else data

    def worker_layout(self, engine_kind: EngineKind) -> WorkerLayout:
        """Scheduler threads per engine instance: see EngineScheduler."""
        from sentiric_tts.synthesis.scheduler import WorkerLayout  # when called: see audio.py

        if engine_kind == "batched":
            # A thread per admitted job: each waits on its own sentence, so a sentence paused for a
            # reader that does not read never holds the thread that another one needs.
            return WorkerLayout(stream_workers=self.admission.max_queued_requests)
        workers = self.engines.workers or _usable_cpus()
        return WorkerLayout(
            stream_workers=workers,
            first_audio_workers=workers if self.first_audio.priority else 0,
            stream_worker_nice=self.first_audio.stream_worker_nice,
            stream_worker_idle_class=self.first_audio.stream_worker_idle_class,
        )


GROUP_CLASSES: dict[str, type[SettingsGroup]] = {  # in order
    name: field.annotation
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, SettingsGroup)
}
FLAT_NAMES = flat_names(GROUP_CLASSES)
"""Flat name (`grpc_port`, the variable `TTS_GRPC_PORT`) -> (group, field)."""
_VARIABLES = variables_model(FLAT_NAMES)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
