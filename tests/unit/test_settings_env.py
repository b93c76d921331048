"""Operators keep their configuration: every variable the flat settings read still sets the same
setting, in the same format, from the environment, from `.env` and as a flat keyword."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sentiric_tts.settings import FIRST_AUDIO_PRESETS, FLAT_NAMES, GROUP_CLASSES, Settings
from sentiric_tts.settings.first_audio import FirstAudioSettings
from sentiric_tts.settings_docs import sections
from sentiric_tts.synthesis.scheduler import WorkerLayout

ROOT = Path(__file__).resolve().parents[2]

# Every variable of .env.example before the settings were grouped: a value an operator may write,
# and where it lands (group, field) with the meaning it had.
BEFORE: dict[str, tuple[str, str, str, Any]] = {
    "TTS_HOST": ("127.0.0.1", "server", "host", "127.0.0.1"),
    "TTS_PORT": ("8080", "server", "port", 8080),
    "TTS_LOG_LEVEL": ("DEBUG", "server", "log_level", "DEBUG"),
    "TTS_LOG_JSON": ("true", "server", "log_json", True),
    "TTS_HTTP_IDLE_TIMEOUT_SECONDS": ("7.5", "server", "idle_timeout_seconds", 7.5),
    "TTS_HTTP_READ_TIMEOUT_SECONDS": ("12", "server", "read_timeout_seconds", 12.0),
    "TTS_GRADIO_ENABLED": ("false", "gradio", "enabled", False),
    "TTS_GRADIO_MAX_FILES": ("50", "gradio", "max_files", 50),
    "TTS_GRADIO_MAX_BYTES": ("134217728", "gradio", "max_bytes", 134217728),
    "TTS_GRPC_ENABLED": ("false", "grpc", "enabled", False),
    "TTS_GRPC_HOST": ("127.0.0.2", "grpc", "host", "127.0.0.2"),
    "TTS_GRPC_PORT": ("9001", "grpc", "port", 9001),
    "TTS_GRPC_TLS_CERT": ("/etc/tts/cert.pem", "grpc", "tls_cert", Path("/etc/tts/cert.pem")),
    "TTS_GRPC_TLS_KEY": ("/etc/tts/key.pem", "grpc", "tls_key", Path("/etc/tts/key.pem")),
    "TTS_GRPC_TLS_CLIENT_CA": ("/etc/tts/ca.pem", "grpc", "tls_client_ca", Path("/etc/tts/ca.pem")),
    "TTS_GRPC_MAX_MESSAGE_BYTES": ("2097152", "grpc", "max_message_bytes", 2097152),
    "TTS_ENGINE": ("piper", "engines", "name", "piper"),
    "TTS_DEFAULT_LANGUAGE": ("de", "engines", "default_language", "de"),
    "TTS_DEFAULT_VOICE": ("en_US-lessac-medium", "engines", "default_voice", "en_US-lessac-medium"),
    "TTS_DATA_DIR": ("/srv/tts", "paths", "data_dir", Path("/srv/tts")),
    "TTS_XTTS_MODEL_DIR": ("/models/xtts", "paths", "xtts_model_dir", Path("/models/xtts")),
    "TTS_CACHE_DIR": ("/var/cache/tts", "paths", "cache_dir", Path("/var/cache/tts")),
    "TTS_PIPER_VOICES_DIR": ("/voices/piper", "paths", "piper_voices_dir", Path("/voices/piper")),
    "TTS_VOICE_LIBRARY_DIR": ("/voices/library", "paths", "voice_library_dir", Path("/voices/library")),
    "TTS_PIPER_DURATION_NOISE": ("0.8", "piper", "duration_noise", 0.8),
    "TTS_PIPER_CPU_ARENA": ("false", "piper", "cpu_arena", False),
    "TTS_PIPER_THREADS": ("2", "piper", "threads", 2),
    "TTS_PIPER_STREAM_FIRST_FRAMES": ("64", "first_audio", "piper_first_frames", 64),
    "TTS_PIPER_LONE_CALL_THREADS": ("1", "piper", "lone_call_threads", 1),
    "TTS_XTTS_ALLOW_DOWNLOAD": ("true", "xtts", "allow_download", True),
    "TTS_XTTS_ACCEPT_CPML": ("true", "xtts", "accept_cpml", True),
    "TTS_XTTS_DOWNLOAD_URL": (
        "https://mirror.example/xtts",
        "xtts",
        "download_url",
        "https://mirror.example/xtts",
    ),
    "TTS_XTTS_DEVICE": ("cpu", "xtts", "device", "cpu"),
    "TTS_XTTS_DTYPE": ("bfloat16", "xtts", "dtype", "bfloat16"),
    "TTS_XTTS_MAX_BATCH": ("8", "xtts", "max_batch", 8),
    "TTS_XTTS_CUDA_GRAPHS": ("false", "xtts", "cuda_graphs", False),
    "TTS_XTTS_STREAM_CHUNK_SIZE": ("30", "xtts", "stream_chunk_size", 30),
    "TTS_XTTS_FIRST_CHUNK_SIZE": ("6", "first_audio", "xtts_first_chunk_size", 6),
    "TTS_XTTS_MIN_NEW_TOKENS": ("5", "xtts", "min_new_tokens", 5),
    "TTS_XTTS_MAX_NEW_TOKENS": ("400", "xtts", "max_new_tokens", 400),
    "TTS_CLONE_MAX_FILES": ("3", "voices", "clone_max_files", 3),
    "TTS_CLONE_MAX_FILE_BYTES": ("2048", "voices", "clone_max_file_bytes", 2048),
    "TTS_CLONE_MAX_SECONDS": ("12.5", "voices", "clone_max_seconds", 12.5),
    "TTS_CLONE_MIN_SPEECH_SECONDS": ("0.5", "voices", "clone_min_speech_seconds", 0.5),
    "TTS_LATENT_CACHE_ENTRIES": ("16", "voices", "latent_cache_entries", 16),
    "TTS_VOICE_LIBRARY_MAX_VOICES": ("10", "voices", "library_max_voices", 10),
    "TTS_LOUDNESS_NORMALIZE": ("false", "audio", "loudness_normalize", False),
    "TTS_LOUDNESS_TARGET_LUFS": ("-23", "audio", "loudness_target_lufs", -23.0),
    "TTS_TRUE_PEAK_CEILING_DBTP": ("-2", "audio", "true_peak_ceiling_dbtp", -2.0),
    "TTS_SENTENCE_PAUSE_MS": ("150", "audio", "sentence_pause_ms", 150.0),
    "TTS_FIRST_SEGMENT_CHARS": ("60", "first_audio", "segment_chars", 60),
    "TTS_CROSSFADE_MS": ("5", "audio", "crossfade_ms", 5.0),
    "TTS_RUNAWAY_SECONDS_PER_CHAR": ("0.5", "audio", "runaway_seconds_per_char", 0.5),
    "TTS_OPENAI_VOICE_MAP": (
        "Alloy = Ana Florence, echo=Viktor Eka,,broken,=nobody",
        "openai",
        "voices",
        {"alloy": "Ana Florence", "echo": "Viktor Eka"},
    ),
    "TTS_DETECT_LANGUAGE": ("false", "openai", "detect_language", False),
    "TTS_WS_MAX_PENDING_CHARS": ("200", "websocket", "max_pending_chars", 200),
    "TTS_WS_IDLE_TIMEOUT_SECONDS": ("30", "websocket", "idle_timeout_seconds", 30.0),
    "TTS_MAX_TEXT_CHARS": ("100", "limits", "max_text_chars", 100),
    "TTS_SSML_MAX_BYTES": ("1024", "limits", "ssml_max_bytes", 1024),
    "TTS_MAX_AUDIO_SECONDS": ("60", "limits", "max_audio_seconds", 60.0),
    "TTS_MAX_PAUSE_SECONDS": ("5", "limits", "max_pause_seconds", 5.0),
    "TTS_WHOLE_FILE_MEMORY_BYTES": ("0", "server", "whole_file_memory_bytes", 0),
    "TTS_MAX_HEADER_BYTES": ("8192", "server", "max_header_bytes", 8192),
    "TTS_API_KEYS": ("key-one, key-two", "security", "api_keys", ("key-one", "key-two")),
    "TTS_ADMIN_API_KEYS": ("root,", "security", "admin_api_keys", ("root",)),
    "TTS_METRICS_REQUIRE_AUTH": ("true", "security", "metrics_require_auth", True),
    "TTS_CORS_ORIGINS": (
        "https://a.example, https://b.example",
        "security",
        "cors_origins",
        ("https://a.example", "https://b.example"),
    ),
    "TTS_ALLOWED_HOSTS": (
        "tts.example.com,*.example.org",
        "security",
        "allowed_hosts",
        ("tts.example.com", "*.example.org"),
    ),
    "TTS_RATE_LIMIT_PER_MINUTE": ("60", "admission", "rate_limit_per_minute", 60),
    "TTS_RATE_LIMIT_BURST": ("3", "admission", "rate_limit_burst", 3),
    "TTS_MAX_STREAMS_PER_CLIENT": ("2", "admission", "max_streams_per_client", 2),
    "TTS_ENGINE_INSTANCES": ("2", "engines", "instances", 2),
    "TTS_ENGINE_WORKERS": ("3", "engines", "workers", 3),
    "TTS_FIRST_AUDIO_PRIORITY": ("false", "first_audio", "priority", False),
    "TTS_STREAM_WORKER_NICE": ("5", "first_audio", "stream_worker_nice", 5),
    "TTS_STREAM_WORKER_IDLE_CLASS": ("false", "first_audio", "stream_worker_idle_class", False),
    "TTS_MAX_QUEUED_REQUESTS": ("8", "admission", "max_queued_requests", 8),
    "TTS_STREAM_BUFFER_CHUNKS": ("2", "admission", "stream_buffer_chunks", 2),
    "TTS_REQUEST_TIMEOUT_SECONDS": ("30", "admission", "request_timeout_seconds", 30.0),
    "TTS_SHUTDOWN_GRACE_SECONDS": ("0", "server", "shutdown_grace_seconds", 0.0),
    "TTS_RETRY_AFTER_SECONDS": ("5", "admission", "retry_after_seconds", 5),
}

# The variables of .env.example before the grouping, in its order (git show <commit>:.env.example).
_ENV_EXAMPLE_BEFORE_TEXT = """
TTS_HOST TTS_PORT TTS_LOG_LEVEL TTS_LOG_JSON TTS_HTTP_IDLE_TIMEOUT_SECONDS TTS_HTTP_READ_TIMEOUT_SECONDS
TTS_GRADIO_ENABLED TTS_GRADIO_MAX_FILES TTS_GRADIO_MAX_BYTES TTS_GRPC_ENABLED TTS_GRPC_HOST TTS_GRPC_PORT
TTS_GRPC_TLS_CERT TTS_GRPC_TLS_KEY TTS_GRPC_TLS_CLIENT_CA TTS_GRPC_MAX_MESSAGE_BYTES TTS_ENGINE
TTS_DEFAULT_LANGUAGE TTS_DEFAULT_VOICE TTS_DATA_DIR TTS_XTTS_MODEL_DIR TTS_CACHE_DIR TTS_PIPER_VOICES_DIR
TTS_VOICE_LIBRARY_DIR TTS_PIPER_DURATION_NOISE TTS_PIPER_CPU_ARENA TTS_PIPER_THREADS
TTS_PIPER_STREAM_FIRST_FRAMES TTS_PIPER_LONE_CALL_THREADS TTS_XTTS_ALLOW_DOWNLOAD TTS_XTTS_ACCEPT_CPML
TTS_XTTS_DOWNLOAD_URL TTS_XTTS_DEVICE TTS_XTTS_DTYPE TTS_XTTS_MAX_BATCH TTS_XTTS_CUDA_GRAPHS
TTS_XTTS_STREAM_CHUNK_SIZE TTS_XTTS_FIRST_CHUNK_SIZE TTS_XTTS_MIN_NEW_TOKENS TTS_XTTS_MAX_NEW_TOKENS
TTS_CLONE_MAX_FILES TTS_CLONE_MAX_FILE_BYTES TTS_CLONE_MAX_SECONDS TTS_CLONE_MIN_SPEECH_SECONDS
TTS_LATENT_CACHE_ENTRIES TTS_VOICE_LIBRARY_MAX_VOICES TTS_LOUDNESS_NORMALIZE TTS_LOUDNESS_TARGET_LUFS
TTS_TRUE_PEAK_CEILING_DBTP TTS_SENTENCE_PAUSE_MS TTS_FIRST_SEGMENT_CHARS TTS_CROSSFADE_MS
TTS_RUNAWAY_SECONDS_PER_CHAR TTS_OPENAI_VOICE_MAP TTS_DETECT_LANGUAGE TTS_WS_MAX_PENDING_CHARS
TTS_WS_IDLE_TIMEOUT_SECONDS TTS_MAX_TEXT_CHARS TTS_SSML_MAX_BYTES TTS_MAX_AUDIO_SECONDS
TTS_MAX_PAUSE_SECONDS TTS_WHOLE_FILE_MEMORY_BYTES TTS_MAX_HEADER_BYTES TTS_API_KEYS TTS_ADMIN_API_KEYS
TTS_METRICS_REQUIRE_AUTH TTS_CORS_ORIGINS TTS_ALLOWED_HOSTS TTS_RATE_LIMIT_PER_MINUTE TTS_RATE_LIMIT_BURST
TTS_MAX_STREAMS_PER_CLIENT TTS_ENGINE_INSTANCES TTS_ENGINE_WORKERS TTS_FIRST_AUDIO_PRIORITY
TTS_STREAM_WORKER_NICE TTS_STREAM_WORKER_IDLE_CLASS TTS_MAX_QUEUED_REQUESTS TTS_STREAM_BUFFER_CHUNKS
TTS_REQUEST_TIMEOUT_SECONDS TTS_SHUTDOWN_GRACE_SECONDS TTS_RETRY_AFTER_SECONDS
"""
ENV_EXAMPLE_BEFORE = _ENV_EXAMPLE_BEFORE_TEXT.split()

# Settings that are only valid beside another one.
COMPANIONS = {
    "TTS_GRPC_TLS_CERT": {"TTS_GRPC_TLS_KEY": "/etc/tts/key.pem"},
    "TTS_GRPC_TLS_KEY": {"TTS_GRPC_TLS_CERT": "/etc/tts/cert.pem"},
    "TTS_GRPC_TLS_CLIENT_CA": {
        "TTS_GRPC_TLS_CERT": "/etc/tts/cert.pem",
        "TTS_GRPC_TLS_KEY": "/etc/tts/key.pem",
    },
}


@pytest.fixture(autouse=True)
def no_tts_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own TTS_* variables must not leak into these tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("TTS_"):
            monkeypatch.delenv(name)


def _read(settings: Settings, group: str, field: str) -> Any:
    return getattr(getattr(settings, group), field)


def test_the_table_covers_every_variable_of_the_old_env_example() -> None:
    assert len(ENV_EXAMPLE_BEFORE) == 81
    assert set(BEFORE) == set(ENV_EXAMPLE_BEFORE)


def test_every_old_variable_is_still_documented() -> None:
    documented = {setting.env for _, settings in sections() for setting in settings}
    assert set(ENV_EXAMPLE_BEFORE) <= documented
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert all(f"{env}=" in example for env in ENV_EXAMPLE_BEFORE)


@pytest.mark.parametrize("env", ENV_EXAMPLE_BEFORE)
def test_each_variable_sets_what_it_set_before(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw, group, field, meaning = BEFORE[env]
    for name, value in {env: raw, **COMPANIONS.get(env, {})}.items():
        monkeypatch.setenv(name, value)
    assert _read(Settings(_env_file=None), group, field) == meaning  # type: ignore[call-arg]


@pytest.mark.parametrize("env", ["TTS_PORT", "TTS_API_KEYS", "TTS_FIRST_SEGMENT_CHARS"])
def test_the_same_value_as_a_flat_keyword(env: str) -> None:
    raw, group, field, meaning = BEFORE[env]
    flat = env.removeprefix("TTS_").lower()
    assert _read(Settings(_env_file=None, **{flat: raw}), group, field) == meaning  # type: ignore[call-arg]


def test_every_old_variable_works_from_a_dotenv_file(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# an operator's file\n\n" + "".join(f"{env}={raw}\n" for env, (raw, *_) in BEFORE.items()),
        encoding="utf-8",
    )
    settings = Settings(_env_file=dotenv)  # type: ignore[call-arg]
    assert {env: _read(settings, group, field) for env, (_, group, field, _) in BEFORE.items()} == {
        env: meaning for env, (*_, meaning) in BEFORE.items()
    }


def test_the_environment_wins_over_dotenv_and_names_ignore_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("TTS_PORT=1111\nTTS_GRPC_PORT=2222\nTTS_UNKNOWN=ignored\n", encoding="utf-8")
    monkeypatch.setenv("tts_port", "3333")
    settings = Settings(_env_file=dotenv)  # type: ignore[call-arg]
    assert (settings.server.port, settings.grpc.port) == (3333, 2222)


def test_the_generated_env_example_sets_the_defaults() -> None:
    assert Settings(_env_file=ROOT / ".env.example") == Settings(_env_file=None)  # type: ignore[call-arg]


def test_empty_list_variables_are_empty_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("TTS_API_KEYS", "TTS_ADMIN_API_KEYS", "TTS_CORS_ORIGINS", "TTS_ALLOWED_HOSTS"):
        monkeypatch.setenv(env, "")
    security = Settings(_env_file=None).security  # type: ignore[call-arg]
    assert (
        security.api_keys == security.admin_api_keys == security.cors_origins == security.allowed_hosts == ()
    )
    assert not security.keys_required


def test_lists_and_maps_also_take_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    monkeypatch.setenv("TTS_OPENAI_VOICE_MAP", '{"Alloy": "Ana Florence"}')
    monkeypatch.setenv("TTS_SAMPLE_RATES", "[16000, 8000]")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.security.cors_origins == ("https://a.example", "https://b.example")
    assert settings.openai.voices == {"alloy": "Ana Florence"}
    assert settings.audio.sample_rates == (8000, 16000)


def test_an_admin_key_is_an_api_key() -> None:
    settings = Settings(_env_file=None, api_keys="k1", admin_api_keys="root")  # type: ignore[call-arg]
    keys = settings.security.key_set()
    assert keys.identify("root", "x") != keys.identify("k1", "x")
    assert Settings(_env_file=None, admin_api_keys="root").security.keys_required  # type: ignore[call-arg]


def test_sample_rates_are_a_subset_of_the_supported_ones() -> None:
    assert Settings(_env_file=None, sample_rates="24000, 8000").audio.sample_rates == (8000, 24000)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="unsupported sample rate"):
        Settings(_env_file=None, sample_rates="11025")  # type: ignore[call-arg]


# --- folders under the data folder ---


def test_folders_follow_the_data_folder_and_are_always_paths(tmp_path: Path) -> None:
    paths = Settings(_env_file=None, data_dir=tmp_path).paths  # type: ignore[call-arg]
    assert paths.xtts_model_dir == tmp_path / "models" / "xtts_v2"
    assert paths.cache_dir == tmp_path / "cache"
    assert paths.piper_voices_dir == tmp_path / "voices" / "piper"
    assert paths.voice_library_dir == tmp_path / "voices"
    assert paths.gradio_files_dir == tmp_path / "cache" / "gradio"
    moved = Settings(_env_file=None, data_dir=tmp_path, cache_dir="/elsewhere").paths  # type: ignore[call-arg]
    assert (moved.cache_dir, moved.voice_library_dir) == (Path("/elsewhere"), tmp_path / "voices")


# --- the first-audio preset ---


def test_the_balanced_preset_is_the_fields_own_defaults() -> None:
    fields = FirstAudioSettings.model_fields
    assert {name: fields[name].default for name in FIRST_AUDIO_PRESETS["balanced"]} == FIRST_AUDIO_PRESETS[
        "balanced"
    ]
    assert FirstAudioSettings().preset == "balanced"


@pytest.mark.parametrize("preset", list(FIRST_AUDIO_PRESETS))
def test_a_preset_sets_the_defaults_of_its_knobs(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_FIRST_AUDIO_PRESET", preset)
    first_audio = Settings(_env_file=None).first_audio  # type: ignore[call-arg]
    assert first_audio.model_dump(exclude={"preset"}) == FIRST_AUDIO_PRESETS[preset]


def test_a_knob_set_explicitly_wins_over_its_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_FIRST_AUDIO_PRESET", "throughput")
    monkeypatch.setenv("TTS_PIPER_STREAM_FIRST_FRAMES", "48")
    first_audio = Settings(_env_file=None, stream_worker_nice=4).first_audio  # type: ignore[call-arg]
    assert (first_audio.piper_first_frames, first_audio.stream_worker_nice) == (48, 4)
    assert first_audio.segment_chars == FIRST_AUDIO_PRESETS["throughput"]["segment_chars"]


def test_an_unknown_preset_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_FIRST_AUDIO_PRESET", "quick")
    with pytest.raises(ValidationError, match="balanced"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("priority", [True, False])
def test_piper_and_the_scheduler_lower_the_same_priority(priority: bool) -> None:
    """One rule: stream threads run lower only beside first-audio threads."""
    settings = Settings(_env_file=None, first_audio_priority=priority, engine_workers=2)  # type: ignore[call-arg]
    layout: WorkerLayout = settings.worker_layout("thread")
    assert settings.first_audio.stream_priority() == (layout.applied_stream_nice, layout.applied_idle_class)
    assert layout.applied_stream_nice == (10 if priority else 0)


# --- names ---


def test_every_setting_has_one_flat_name() -> None:
    fields = sum(len(group.model_fields) for group in GROUP_CLASSES.values())
    assert len(FLAT_NAMES) == fields
    assert not set(FLAT_NAMES) & set(GROUP_CLASSES)


def test_a_group_given_whole_wins_over_its_flat_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_GRPC_PORT", "9000")
    monkeypatch.setenv("TTS_GRPC_HOST", "127.0.0.9")
    settings = Settings(_env_file=None, grpc={"port": 9100})  # type: ignore[call-arg]
    assert (settings.grpc.port, settings.grpc.host) == (9100, "127.0.0.9")
