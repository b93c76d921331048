"""The doors clients come in by: the HTTP server, gRPC, Gradio, WebSocket streaming, Wyoming and
the OpenAI-compatible route."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from sentiric_tts.settings.fields import CommaSeparatedPairs, SettingsGroup, setting


class ServerSettings(SettingsGroup):
    title = "HTTP server"

    host: str = setting("0.0.0.0", env="TTS_HOST", description="Address the HTTP server binds to.")
    port: int = setting(14030, env="TTS_PORT", ge=1, le=65535, description="HTTP port.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "INFO", env="TTS_LOG_LEVEL", description="Log level."
    )
    log_json: bool = setting(
        False, env="TTS_LOG_JSON", description="Write logs as JSON lines instead of text."
    )
    idle_timeout_seconds: float = setting(
        5.0,
        env="TTS_HTTP_IDLE_TIMEOUT_SECONDS",
        gt=0,
        description="An HTTP connection with no request in progress (new, or kept alive after a "
        "response) is closed after this long without a byte from the client. Behind a load "
        "balancer that reuses connections, set it above the balancer's idle timeout.",
    )
    read_timeout_seconds: float = setting(
        30.0,
        env="TTS_HTTP_READ_TIMEOUT_SECONDS",
        gt=0,
        description="A request's line and headers must arrive within this long of its first byte, "
        "and its body may pause no longer than this; past it: 408 and the connection is closed.",
    )
    max_header_bytes: int = setting(
        64 * 1024,
        env="TTS_MAX_HEADER_BYTES",
        ge=4096,
        description="Largest request head, in bytes: an HTTP request line with its headers (431 "
        "beyond it, or beyond 100 headers) and a gRPC call's metadata (RESOURCE_EXHAUSTED).",
    )
    whole_file_memory_bytes: int = setting(
        8 * 1024 * 1024,
        env="TTS_WHOLE_FILE_MEMORY_BYTES",
        ge=0,
        description="A whole-file HTTP response larger than this waits in a temporary file under "
        "<data_dir>/tmp while it is sent, not in memory (a slow client holds no memory).",
    )
    shutdown_grace_seconds: float = setting(
        20.0,
        env="TTS_SHUTDOWN_GRACE_SECONDS",
        ge=0,
        description="On SIGTERM, how long in-flight work may run (readiness 503, the listener open) "
        "before what is left is cut, each door telling its client with an error.",
    )


class GrpcSettings(SettingsGroup):
    title = "gRPC (sentiric.tts.v1.TtsCoquiService)"

    enabled: bool = setting(
        True, env="TTS_GRPC_ENABLED", description="Serve the gRPC API beside HTTP, in the same process."
    )
    host: str = setting("0.0.0.0", env="TTS_GRPC_HOST", description="Address the gRPC server binds to.")
    port: int = setting(14031, env="TTS_GRPC_PORT", ge=1, le=65535, description="gRPC port.")
    tls_cert: Path | None = setting(
        None,
        env="TTS_GRPC_TLS_CERT",
        description="PEM certificate (chain) of the gRPC server; unset: plaintext gRPC.",
    )
    tls_key: Path | None = setting(
        None, env="TTS_GRPC_TLS_KEY", description="PEM private key of `TTS_GRPC_TLS_CERT`."
    )
    tls_client_ca: Path | None = setting(
        None,
        env="TTS_GRPC_TLS_CLIENT_CA",
        description="PEM CA bundle for mutual TLS: when set, gRPC clients must present a "
        "certificate signed by it.",
    )
    max_message_bytes: int = setting(
        16 * 1024 * 1024,
        env="TTS_GRPC_MAX_MESSAGE_BYTES",
        ge=1024 * 1024,
        description="Largest gRPC request accepted, in bytes (speaker_wav included). Whole-file "
        "responses are not capped: clients raise their own receive limit (4 MiB by default).",
    )

    @model_validator(mode="after")
    def _tls_complete(self) -> GrpcSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set TTS_GRPC_TLS_CERT and TTS_GRPC_TLS_KEY together (or neither)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError(
                "TTS_GRPC_TLS_CLIENT_CA (mutual TLS) needs TTS_GRPC_TLS_CERT and TTS_GRPC_TLS_KEY"
            )
        return self


class GradioSettings(SettingsGroup):
    title = "Gradio interface"

    enabled: bool = setting(
        True,
        env="TTS_GRADIO_ENABLED",
        description="Serve a Gradio interface at /gradio (when the `gradio` extra is installed); "
        "with API keys set it asks for a key to log in.",
    )
    max_files: int = setting(
        1000,
        env="TTS_GRADIO_MAX_FILES",
        ge=10,
        description="Most files Gradio's folder (<cache_dir>/gradio: uploads and results, each "
        "kept an hour) may hold; past it, or past TTS_GRADIO_MAX_BYTES, Gradio calls get 503.",
    )
    max_bytes: int = setting(
        1024 * 1024 * 1024,
        env="TTS_GRADIO_MAX_BYTES",
        ge=64 * 1024 * 1024,
        description="Most bytes Gradio's folder (<cache_dir>/gradio) may hold.",
    )


class WebSocketSettings(SettingsGroup):
    title = "WebSocket streaming (/ws/tts)"

    max_pending_chars: int = setting(
        5000,
        env="TTS_WS_MAX_PENDING_CHARS",
        ge=100,
        description="Text a WebSocket session may have waiting to be spoken; more is refused with an "
        "error event until speech catches up.",
    )
    idle_timeout_seconds: float = setting(
        300.0,
        env="TTS_WS_IDLE_TIMEOUT_SECONDS",
        gt=0,
        description="A WebSocket session that sends nothing for this long is closed.",
    )


class WyomingSettings(SettingsGroup):
    title = "Wyoming (Home Assistant)"

    enabled: bool = setting(
        True,
        env="TTS_WYOMING_ENABLED",
        description="Serve the Wyoming protocol (Home Assistant's Wyoming integration) on its own TCP "
        "port, beside HTTP. Wyoming has no authentication: API keys do not apply to it.",
    )
    host: str | None = setting(
        None,
        env="TTS_WYOMING_HOST",
        description="Address the Wyoming server binds to; unset: the HTTP server's (`TTS_HOST`). "
        "Anyone who can reach it can speak with the service (no keys): bind it to a trusted network.",
    )
    port: int = setting(10200, env="TTS_WYOMING_PORT", ge=1, le=65535, description="Wyoming TCP port.")
    max_event_bytes: int = setting(
        1024 * 1024,
        env="TTS_WYOMING_MAX_EVENT_BYTES",
        ge=4096,
        description="Largest data or payload an event may declare; a larger one is read past in "
        "small pieces (never held), answered with an error event, and the connection goes on.",
    )
    idle_timeout_seconds: float = setting(
        300.0,
        env="TTS_WYOMING_IDLE_TIMEOUT_SECONDS",
        gt=0,
        description="A Wyoming connection that sends nothing for this long, with no reply in "
        "progress, is closed.",
    )
    zeroconf: bool = setting(
        False,
        env="TTS_WYOMING_ZEROCONF",
        description="Advertise the Wyoming server over mDNS (`_wyoming._tcp`) so Home Assistant "
        "discovers it; needs the `zeroconf` extra (`pip install 'sentiric-tts[zeroconf]'`).",
    )
    zeroconf_name: str = setting(
        "",
        env="TTS_WYOMING_ZEROCONF_NAME",
        description="The advertised service name; empty: this machine's MAC address, as Wyoming's "
        "own servers do.",
    )


_OPENAI_VOICES = {
    "alloy": "Claribel Dervla",
    "echo": "Andrew Chipper",
    "fable": "Viktor Eka",
    "onyx": "Damien Black",
    "nova": "Nova Hogarth",
    "shimmer": "Daisy Studious",
    "ash": "Craig Gutsy",
    "ballad": "Gilberto Mathias",
    "coral": "Ana Florence",
    "sage": "Sofia Hellen",
    "verse": "Aaron Dreschner",
    "marin": "Gracie Wise",
    "cedar": "Baldur Sanjin",
}


class OpenAISettings(SettingsGroup):
    title = "OpenAI-compatible API"

    voices: CommaSeparatedPairs = setting(
        default_factory=lambda: dict(_OPENAI_VOICES),
        env="TTS_OPENAI_VOICE_MAP",
        description="OpenAI voice names mapped to our voices (name=voice id, comma-separated, or a "
        "JSON object) for /v1/audio/speech; a name whose voice the running engine lacks speaks "
        "with the default voice.",
    )
    detect_language: bool = setting(
        True,
        env="TTS_DETECT_LANGUAGE",
        description="On /v1/audio/speech without a `language`, detect it from the text (among the "
        "engine's languages) before falling back to the default language.",
    )
    listings_require_key: bool = setting(
        False,
        env="TTS_OPENAI_LISTINGS_REQUIRE_KEY",
        description="With API keys set, GET /v1/models, /v1/audio/models and /v1/audio/voices "
        "answer without a key too, as Open WebUI reads them without one (listing no library "
        "voice: those belong to keys); true: they need a key like every other route.",
    )

    @field_validator("voices", mode="after")
    @classmethod
    def _names_in_lower_case(cls, voices: dict[str, str]) -> dict[str, str]:
        # Requests name a voice in any case; the map is looked up in lower case.
        return {
            name.strip().lower(): voice.strip()
            for name, voice in voices.items()
            if name.strip() and voice.strip()
        }
