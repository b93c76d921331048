"""Every setting of the service, typed, with its default.

Read from environment variables prefixed `TTS_` (e.g. `TTS_PORT=14030`) and from a `.env` file in
the working directory. No other module reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SUPPORTED_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
LONGEST_REFERENCE_SECONDS = 300.0
"""The most TTS_CLONE_MAX_SECONDS may be, so that a stored clip (taken under any setting) is
decoded within a bound when it is played back."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TTS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- Server ---
    host: str = Field("0.0.0.0", description="Address the HTTP server binds to.")
    port: int = Field(14030, ge=1, le=65535, description="HTTP port.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_json: bool = Field(False, description="Write logs as JSON lines instead of text.")
    http_idle_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="An HTTP connection with no request in progress (new, or kept alive after a "
        "response) is closed after this long without a byte from the client. Behind a load "
        "balancer that reuses connections, set it above the balancer's idle timeout.",
    )
    http_read_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="A request's line and headers must arrive within this long of its first byte, "
        "and its body may pause no longer than this; past it: 408 and the connection is closed.",
    )
    gradio_enabled: bool = Field(
        True,
        description="Serve a Gradio interface at /gradio (when the `gradio` extra is installed); "
        "with API keys set it asks for a key to log in.",
    )
    gradio_max_files: int = Field(
        1000,
        ge=10,
        description="Most files Gradio's folder (<cache_dir>/gradio: uploads and results, each "
        "kept an hour) may hold; past it, or past gradio_max_bytes, Gradio calls get 503.",
    )
    gradio_max_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=64 * 1024 * 1024,
        description="Most bytes Gradio's folder (<cache_dir>/gradio) may hold.",
    )

    # --- gRPC (sentiric.tts.v1.TtsCoquiService) ---
    grpc_enabled: bool = Field(True, description="Serve the gRPC API beside HTTP, in the same process.")
    grpc_host: str = Field("0.0.0.0", description="Address the gRPC server binds to.")
    grpc_port: int = Field(14031, ge=1, le=65535, description="gRPC port.")
    grpc_tls_cert: Path | None = Field(
        None, description="PEM certificate (chain) of the gRPC server; unset: plaintext gRPC."
    )
    grpc_tls_key: Path | None = Field(None, description="PEM private key of `TTS_GRPC_TLS_CERT`.")
    grpc_tls_client_ca: Path | None = Field(
        None,
        description="PEM CA bundle for mutual TLS: when set, gRPC clients must present a "
        "certificate signed by it.",
    )
    grpc_max_message_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024 * 1024,
        description="Largest gRPC request accepted, in bytes (speaker_wav included). Whole-file "
        "responses are not capped: clients raise their own receive limit (4 MiB by default).",
    )

    # --- Engine ---
    engine: Literal["auto", "xtts", "piper"] = Field(
        "auto",
        description="Engine: auto takes XTTS when its weights are present, else Piper.",
    )
    default_language: str = Field("en", description="Language used when a request names none.")
    default_voice: str = Field(
        "", description="Voice used when a request names none; empty means the engine's default."
    )

    # --- Folders ---
    data_dir: Path = Field(Path("./data"), description="Root of everything the service stores.")
    # The folders below default to places under data_dir, so moving data_dir moves them all.
    xtts_model_dir: Path | None = Field(
        None,
        description="XTTS v2 weights: config.json, model.pth, vocab.json, speakers_xtts.pth "
        "(default: <data_dir>/models/xtts_v2).",
    )
    cache_dir: Path | None = Field(
        None,
        description="Caches that survive restarts, e.g. cloning latents (default: <data_dir>/cache).",
    )
    piper_voices_dir: Path | None = Field(
        None,
        description="Extra Piper voices (*.onnx with *.onnx.json) picked up at start "
        "(default: <data_dir>/voices/piper).",
    )
    voice_library_dir: Path | None = Field(
        None,
        description="The voice library: library.db and one folder of clips and latents per saved "
        "voice (default: <data_dir>/voices).",
    )

    # --- Piper ---
    piper_duration_noise: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Piper's phoneme-duration noise (noise_w). 0 makes a text's duration "
        "reproducible; the voices' own 0.8 varies rhythm from run to run.",
    )
    piper_cpu_arena: bool = Field(
        True,
        description="onnxruntime's CPU memory arena for Piper: ~25 % faster; resident memory grows "
        "in steps to the largest sentence's size and stays there. false: smaller, slower.",
    )
    piper_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="CPU threads a Piper call computes with when other calls run beside it "
        "(requests at once, one per engine worker); 0: onnxruntime's choice (every core).",
    )
    piper_stream_first_frames: int = Field(
        48,
        ge=0,
        le=1024,
        description="Piper decodes each sentence in pieces, the first this many frames long (256 "
        "samples each: 48 is ~0.56 s at 22.05 kHz) and each next one twice as long up to 256 "
        "frames, so a sentence is heard ~4 x sooner than if rendered whole; 0: sentences whole.",
    )
    piper_lone_call_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="CPU threads a Piper call computes with when it starts alone (one caller: "
        "faster first audio and stream); 0: every core. Costs a second copy of each voice in "
        "memory; set it equal to piper_threads for no second copy.",
    )

    # --- XTTS ---
    xtts_allow_download: bool = Field(
        False, description="Download the XTTS v2 weights on first run when they are missing."
    )
    xtts_accept_cpml: bool = Field(
        False,
        description="Set true to state you have read and agree to the Coqui Public Model License "
        "(https://coqui.ai/cpml); needed for the download.",
    )
    xtts_download_url: str = Field(
        "https://huggingface.co/coqui/XTTS-v2/resolve/main",
        description="Where the XTTS v2 files are downloaded from.",
    )
    xtts_device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="Where XTTS runs: auto takes CUDA when available."
    )
    xtts_dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32",
        description="dtype of the XTTS GPT (its weights and KV cache) on CUDA; the vocoder and "
        "cloning stay float32, and the CPU always runs float32.",
    )
    xtts_max_batch: int = Field(
        0,
        ge=0,
        le=256,
        description="XTTS sentences advanced together in one decode step, each with a KV cache "
        "slot allocated at start (full-size model: ~128 MiB per slot in float16, twice that in "
        "float32); 0: 32 on CUDA, 4 on the CPU. More sentences in flight wait for a slot.",
    )
    xtts_cuda_graphs: bool = Field(
        True,
        description="Replay the XTTS decode step from CUDA graphs captured at start (one per "
        "batch-size bucket); a capture that fails falls back to eager steps with one log line.",
    )
    xtts_stream_chunk_size: int = Field(20, ge=2, le=400, description="Audio tokens per streamed XTTS chunk.")
    xtts_first_chunk_size: int = Field(
        8, ge=2, le=400, description="Audio tokens in the first streamed chunk of a sentence."
    )
    xtts_min_new_tokens: int = Field(
        0, ge=0, description="Force at least this many audio tokens per sentence (0: off)."
    )
    xtts_max_new_tokens: int = Field(
        0, ge=0, description="Cap audio tokens per sentence (0: the model's own limit)."
    )

    # --- Cloning ---
    clone_max_files: int = Field(5, ge=1, le=20, description="Most reference clips per clone.")
    clone_max_file_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest accepted reference clip, in bytes."
    )
    clone_max_seconds: float = Field(
        30.0,
        gt=0,
        le=LONGEST_REFERENCE_SECONDS,
        description="Longest accepted reference clip, in decoded seconds (at most 300).",
    )
    clone_min_speech_seconds: float = Field(
        1.0, ge=0, description="Least speech a reference clip must hold, in seconds."
    )
    latent_cache_entries: int = Field(
        256, ge=1, description="Cloned-voice conditionings kept in memory (all are kept on disk)."
    )
    voice_library_max_voices: int = Field(
        1000, ge=1, description="Most voices the voice library holds; creating more answers 409."
    )

    # --- Audio out ---
    loudness_normalize: bool = Field(
        True, description="Normalise loudness (EBU R128 measurement) to the target below."
    )
    loudness_target_lufs: float = Field(
        -20.0,
        ge=-40.0,
        le=-5.0,
        description="Target integrated loudness, in LUFS (-20 leaves speech's ~18 dB crest "
        "factor under the ceiling; -23 is broadcast R128, -16 is loud).",
    )
    true_peak_ceiling_dbtp: float = Field(
        -1.5, ge=-12.0, le=0.0, description="True-peak ceiling of the limiter, in dBTP."
    )
    sentence_pause_ms: float = Field(
        200.0, ge=0.0, le=2000.0, description="Silence between sentences, in milliseconds."
    )
    first_segment_chars: int = Field(
        40,
        ge=0,
        le=1000,
        description="An opening sentence longer than this is cut after its first clause (comma, "
        "semicolon, colon, dash), so an engine that renders a segment at once (Piper with "
        "piper_stream_first_frames=0) starts speaking sooner; 0: never. Engines that stream "
        "inside a segment (XTTS, Piper by default) are not cut.",
    )
    crossfade_ms: float = Field(
        10.0, ge=1.0, le=100.0, description="Fade at every segment boundary, in milliseconds."
    )
    runaway_seconds_per_char: float = Field(
        0.3,
        gt=0.0,
        description="Runaway guard: a sentence may last at most 3 s + this many seconds per "
        "character (a CJK character counts 3, a sign read aloud 5; divided by the speed); longer "
        "audio is cut and logged.",
    )

    # --- OpenAI-compatible API ---
    openai_voice_map: str = Field(
        "alloy=Claribel Dervla,echo=Andrew Chipper,fable=Viktor Eka,onyx=Damien Black,"
        "nova=Nova Hogarth,shimmer=Daisy Studious,ash=Craig Gutsy,ballad=Gilberto Mathias,"
        "coral=Ana Florence,sage=Sofia Hellen,verse=Aaron Dreschner,marin=Gracie Wise,"
        "cedar=Baldur Sanjin",
        description="OpenAI voice names mapped to our voices (name=voice id, comma-separated) for "
        "/v1/audio/speech; a name whose voice the running engine lacks speaks with the default voice.",
    )
    detect_language: bool = Field(
        True,
        description="On /v1/audio/speech without a `language`, detect it from the text (among the "
        "engine's languages) before falling back to the default language.",
    )

    # --- WebSocket streaming (/ws/tts) ---
    ws_max_pending_chars: int = Field(
        5000,
        ge=100,
        description="Text a WebSocket session may have waiting to be spoken; more is refused with an "
        "error event until speech catches up.",
    )
    ws_idle_timeout_seconds: float = Field(
        300.0, gt=0, description="A WebSocket session that sends nothing for this long is closed."
    )

    # --- Limits ---
    max_text_chars: int = Field(5000, ge=1, description="Longest accepted text, in characters.")
    ssml_max_bytes: int = Field(
        65536, ge=256, description="Largest accepted SSML document, in bytes (UTF-8)."
    )
    max_audio_seconds: float = Field(
        600.0,
        gt=0,
        description="Most audio one request may make, in seconds (speech and pauses): a request "
        "estimated longer is refused before synthesis (422 audio_too_long), and one whose speech "
        "runs past it while synthesized is stopped with the same error.",
    )
    max_pause_seconds: float = Field(
        60.0,
        ge=0,
        description="Most silence one request may ask for, in seconds: SSML breaks, sentence, "
        "paragraph and clause pauses together (422 pauses_too_long).",
    )
    whole_file_memory_bytes: int = Field(
        8 * 1024 * 1024,
        ge=0,
        description="A whole-file HTTP response larger than this waits in a temporary file under "
        "<data_dir>/tmp while it is sent, not in memory (a slow client holds no memory).",
    )
    max_header_bytes: int = Field(
        64 * 1024,
        ge=4096,
        description="Largest request head, in bytes: an HTTP request line with its headers (431 "
        "beyond it, or beyond 100 headers) and a gRPC call's metadata (RESOURCE_EXHAUSTED).",
    )

    # --- Security ---
    api_keys: str = Field(
        "",
        description="Comma-separated API keys; empty leaves the API open. Sent as "
        "'Authorization: Bearer KEY' or 'X-API-Key: KEY'.",
    )
    admin_api_keys: str = Field(
        "",
        description="Comma-separated API keys that also see, use and manage every library voice, "
        "whoever created it (other keys see only their own); each is a valid API key too.",
    )
    metrics_require_auth: bool = Field(False, description="Require an API key for GET /metrics too.")
    cors_origins: str = Field(
        "", description="Comma-separated origins allowed cross-origin ('*' for any); empty: none."
    )
    allowed_hosts: str = Field(
        "",
        description="Without API keys, the service answers only requests whose Host is an IP "
        "address, localhost, this machine's host names or the bind address (a DNS-rebinding "
        "guard: 421 otherwise). Comma-separated further names ('*.example.com' for subdomains), "
        "or '*' for any.",
    )
    rate_limit_per_minute: int = Field(
        0,
        ge=0,
        description="Synthesis requests per minute per API key (or client address when the API "
        "is open), as a token bucket; 0 turns it off.",
    )
    rate_limit_burst: int = Field(
        10, ge=1, description="Requests a client may make at once before the rate applies."
    )
    max_streams_per_client: int = Field(
        0,
        ge=0,
        description="Synthesis requests in flight per API key or client address; 0: no limit.",
    )

    # --- Scheduling ---
    engine_instances: int = Field(
        1,
        ge=1,
        le=16,
        description="Engine instances (e.g. one per GPU or model replica), each with its own copy "
        "of the model in memory and its own worker threads. Piper needs one: its calls already "
        "run in parallel (engine_workers).",
    )
    engine_workers: int = Field(
        0,
        ge=0,
        le=64,
        description="Threads per engine instance that advance streams, when its calls can run in "
        "parallel (Piper: one call per thread); 0: one per usable CPU core. XTTS: one per admitted "
        "request (each waits on its sentence in the engine's batch loop).",
    )
    first_audio_priority: bool = Field(
        True,
        description="Piper: as many more threads per instance that only start requests, while the "
        "threads continuing streams run at a lower OS priority (stream_worker_nice), so a new "
        "request's first audio preempts sentences in progress instead of waiting for them.",
    )
    stream_worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="How much lower (Linux nice) the threads continuing streams run than those "
        "starting requests, when first_audio_priority is on; 0: the same priority.",
    )
    stream_worker_idle_class: bool = Field(
        True,
        description="With a lower priority (stream_worker_nice > 0), the threads continuing "
        "streams are also in Linux's SCHED_IDLE class: they use only cores that nothing else "
        "wants, and a starting request preempts them at once (nice alone leaves them ~10 %).",
    )
    max_queued_requests: int = Field(
        64,
        ge=1,
        description="Synthesis requests admitted at once (running and waiting); beyond it: 503.",
    )
    stream_buffer_chunks: int = Field(
        4,
        ge=1,
        description="Chunks synthesized ahead of a slow client before its synthesis pauses.",
    )
    request_timeout_seconds: float = Field(
        300.0, gt=0, description="Deadline for one synthesis request, queueing included."
    )
    shutdown_grace_seconds: float = Field(
        20.0,
        ge=0,
        description="On SIGTERM, how long in-flight work may run (readiness 503, the listener open) "
        "before what is left is cut, each door telling its client with an error.",
    )
    retry_after_seconds: int = Field(2, ge=1, description="Retry-After sent with 503 when the queue is full.")

    # --- Client compatibility (doors speaking other servers' APIs: docs/clients.md) ---
    openai_listings_require_key: bool = Field(
        False,
        description="With API keys set, GET /v1/models, /v1/audio/models and /v1/audio/voices "
        "answer without a key too, as Open WebUI reads them without one (listing no library "
        "voice: those belong to keys); true: they need a key like every other route.",
    )
    # --- end of client compatibility ---

    @model_validator(mode="after")
    def _folders_under_data_dir(self) -> Settings:
        if self.xtts_model_dir is None:
            self.xtts_model_dir = self.data_dir / "models" / "xtts_v2"
        if self.cache_dir is None:
            self.cache_dir = self.data_dir / "cache"
        if self.piper_voices_dir is None:
            self.piper_voices_dir = self.data_dir / "voices" / "piper"
        if self.voice_library_dir is None:
            self.voice_library_dir = self.data_dir / "voices"
        return self

    @model_validator(mode="after")
    def _grpc_tls_complete(self) -> Settings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("set TTS_GRPC_TLS_CERT and TTS_GRPC_TLS_KEY together (or neither)")
        if self.grpc_tls_client_ca is not None and self.grpc_tls_cert is None:
            raise ValueError(
                "TTS_GRPC_TLS_CLIENT_CA (mutual TLS) needs TTS_GRPC_TLS_CERT and TTS_GRPC_TLS_KEY"
            )
        return self

    @property
    def model_dir(self) -> Path:
        assert self.xtts_model_dir is not None  # filled in by the validator
        return self.xtts_model_dir

    @property
    def cache_path(self) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir

    @property
    def piper_voices_path(self) -> Path:
        assert self.piper_voices_dir is not None
        return self.piper_voices_dir

    @property
    def voice_library_path(self) -> Path:
        assert self.voice_library_dir is not None
        return self.voice_library_dir

    @property
    def api_key_list(self) -> tuple[str, ...]:
        """Every accepted API key, admin keys included."""
        keys = (key.strip() for key in f"{self.api_keys},{self.admin_api_keys}".split(","))
        return tuple(dict.fromkeys(key for key in keys if key))

    @property
    def admin_api_key_list(self) -> tuple[str, ...]:
        return tuple(key.strip() for key in self.admin_api_keys.split(",") if key.strip())

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(origin.strip() for origin in self.cors_origins.split(",") if origin.strip())

    @property
    def allowed_host_list(self) -> tuple[str, ...]:
        return tuple(host.strip() for host in self.allowed_hosts.split(",") if host.strip())

    @property
    def gradio_files_path(self) -> Path:
        """Where Gradio keeps uploads and results: a cache, in the data folder."""
        return self.cache_path / "gradio"

    @property
    def openai_voices(self) -> dict[str, str]:
        """OpenAI voice name (lower case) -> our voice id."""
        pairs = (item.partition("=") for item in self.openai_voice_map.split(","))
        return {
            name.strip().lower(): voice.strip() for name, _, voice in pairs if name.strip() and voice.strip()
        }

    @property
    def sample_rates(self) -> tuple[int, ...]:
        return SUPPORTED_SAMPLE_RATES


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
