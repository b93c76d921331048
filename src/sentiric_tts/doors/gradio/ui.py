"""An optional Gradio interface at `/gradio`, for people who know Gradio (the `gradio` extra).

It is one more door onto the same pipeline: each click builds a `SynthesisRequest` and calls
`Runtime.open_speech(..., door="gradio")`, so limits, SSML, cloning and encoding behave exactly as
over HTTP. Gradio is imported only here and only when installed; without it the service starts
as usual and says in one log line that /gradio is off.

Air-gapped by construction: telemetry and Gradio's version check are off, there are no share links,
and the page loads only Gradio's own frontend, served from the installed package.
"""

# No `from __future__ import annotations` here: Gradio hands a handler its `gr.Request` only when
# the parameter's annotation is gr.Request at run time (see `build_blocks`).

import importlib.util
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
from fastapi import FastAPI

from sentiric_tts.doors.admission import Caller, admit, identify
from sentiric_tts.doors.gradio.files import GradioFilesGuard, GradioFolder, claim_process_folder
from sentiric_tts.engines.base import GenerationParams
from sentiric_tts.failures import NotReady, ServiceFailure, Unauthorized, problem
from sentiric_tts.runtime import Runtime
from sentiric_tts.settings import Settings
from sentiric_tts.synthesis.planning import MAX_SPEED, MIN_SPEED
from sentiric_tts.synthesis.request import SynthesisPlan, SynthesisRequest

log = logging.getLogger(__name__)

GRADIO_PATH = "/gradio"
DOOR = "gradio"
LOGIN_MESSAGE = "This service needs an API key: type any user name, and an API key as the password."
CLONE_NEEDS_XTTS = (
    "Voice cloning needs the XTTS engine; this service runs **{engine}**, which cannot clone. "
    "Install XTTS v2 weights (see the README) to clone voices."
)
GRADIO_API_PATH = f"{GRADIO_PATH}/gradio_api"


def import_gradio(files_dir: Path) -> ModuleType | None:
    """Gradio, configured for an air-gapped host and to keep its files in `files_dir` (see
    doors/gradio/files.py); None when it is not installed."""
    if importlib.util.find_spec("gradio") is None:
        return None
    # Gradio and huggingface_hub read these at import: no telemetry, no version check over the
    # network. Written, never read: our own configuration still comes from sentiric_tts.settings only.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    claim_process_folder(files_dir)
    import gradio

    return gradio


class GradioDoor:
    """The handlers behind the interface; the runtime is looked up per call because the app's
    lifespan builds it after the interface is mounted."""

    def __init__(self, app: FastAPI, gr: ModuleType) -> None:
        self._app = app
        self._gr = gr
        # Gradio's login remembers only the user name, so the key it was given is kept here, per
        # name (the key last used with that name), and presented at each call like a header.
        self._keys: dict[str, str] = {}

    def _refusal(self, message: str) -> Exception:
        """What the page shows in its error toast (and gradio_client raises as AppError): the
        message only; the client caused it, so no traceback in the server log either."""
        error: Exception = self._gr.Error(message, print_exception=False)
        return error

    # --- auth ---

    def login(self, username: str, password: str) -> bool:
        """Gradio's `auth`: the password must be one of the service's API keys."""
        runtime: Runtime | None = self._app.state.runtime
        if runtime is None:
            return False
        try:
            identify(runtime, password or None, "gradio-login", DOOR)
        except Unauthorized:
            return False
        self._keys[username] = password
        return True

    def _caller(self, request: Any, *, work: bool) -> tuple[Runtime, Caller]:
        """The running service and who calls, through the doors' one admission step: `work`
        (synthesis) is also refused while the service drains; a listing only before it is ready."""
        runtime: Runtime | None = self._app.state.runtime
        address = request.client.host if request is not None and request.client else "unknown"
        key: str | None = None
        if runtime is not None and runtime.api_keys.enabled:
            key = self._keys.get(getattr(request, "username", None) or "")
            if key is None:
                raise self._refusal("Log in again with an API key as the password.")
        try:
            if runtime is None or (not runtime.ready and not work):
                raise NotReady()
            return runtime, (admit if work else identify)(runtime, key, address, DOOR)
        except ServiceFailure as exc:
            raise self._refusal(problem(exc).message) from None

    # --- catalogue (on page load) ---

    async def catalogue(self, request: Any) -> tuple[Any, ...]:
        """Voices (the library's that this caller may use), languages and the clone tab's state,
        from the running engine (on the event loop, like the HTTP catalogue: the voice library is
        read from one thread)."""
        gr = self._gr
        runtime, caller = self._caller(request, work=False)
        catalogue = runtime.pipeline.catalogue
        access = runtime.library_access(caller.client)
        voices = [(f"{v.name} ({v.kind})", v.id) for v in catalogue.voices(access)]
        languages = [("Voice default", ""), *((lang, lang) for lang in catalogue.languages())]
        can_clone = runtime.engine.supports_cloning
        engine = runtime.engine
        return (
            gr.update(choices=voices, value=catalogue.default_voice),
            gr.update(choices=languages, value=""),
            gr.update(choices=languages, value=""),
            gr.update(value=CLONE_NEEDS_XTTS.format(engine=engine.name), visible=not can_clone),
            gr.update(visible=can_clone),
            f"Engine **{engine.name}** on {engine.device}.",
        )

    # --- synthesis ---

    async def speak(
        self, text: str | None, voice: str | None, language: str | None, speed: float | None, request: Any
    ) -> tuple[bytes, str]:
        synthesis = SynthesisRequest(
            text=text or "",
            voice=voice or None,
            language=language or None,
            params=GenerationParams(speed=self._speed(speed)),
            output_format="wav",
        )
        return await self._render(synthesis, *self._caller(request, work=True))

    async def clone(
        self,
        files: Sequence[str] | None,
        text: str | None,
        language: str | None,
        speed: float | None,
        request: Any,
    ) -> tuple[bytes, str]:
        runtime, caller = self._caller(request, work=True)
        clips = await anyio.to_thread.run_sync(self._read_clips, runtime, files or ())
        synthesis = SynthesisRequest(
            text=text or "",
            language=language or None,
            params=GenerationParams(speed=self._speed(speed)),
            output_format="wav",
            references=clips,
        )
        return await self._render(synthesis, runtime, caller)

    def _speed(self, speed: float | None) -> float:
        value = 1.0 if speed is None else speed
        if (
            not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not MIN_SPEED <= value <= MAX_SPEED
        ):
            raise self._refusal(f"Speed must be a number from {MIN_SPEED} to {MAX_SPEED}; got {speed!r}.")
        return float(value)

    def _read_clips(self, runtime: Runtime, files: Sequence[str]) -> tuple[tuple[str, bytes], ...]:
        limits = runtime.pipeline.catalogue.reference_limits
        if not files:
            raise self._refusal(f"Upload 1 to {limits.max_files} reference clips of the voice to clone.")
        clips: list[tuple[str, bytes]] = []
        for file in files:
            path = Path(file)
            # Refuse an oversized clip before reading it; Gradio's upload limit normally got there first.
            if path.stat().st_size > limits.max_file_bytes:
                raise self._refusal(
                    f"Reference '{path.name}' is over the limit of {limits.max_file_bytes} bytes."
                )
            clips.append((path.name, path.read_bytes()))
        return tuple(clips)

    async def _render(
        self, synthesis: SynthesisRequest, runtime: Runtime, caller: Caller
    ) -> tuple[bytes, str]:
        started = time.perf_counter()
        try:
            audio = await runtime.open_speech(synthesis, caller.client, door=DOOR)
            try:
                body = await audio.collect()
            except BaseException:
                audio.cancel()  # the page went away or the render failed: free the engine at once
                raise
        except ServiceFailure as exc:
            raise self._refusal(problem(exc).message) from None
        total = time.perf_counter() - started
        return body, _timing_line(audio.stats.time_to_first_audio_s, total, audio.audio_seconds, audio.plan)


def _timing_line(ttfa: float | None, total: float, audio_s: float, plan: SynthesisPlan) -> str:
    first = "n/a" if ttfa is None else f"{ttfa * 1000:.0f} ms"
    rtf = f"{total / audio_s:.3f}" if audio_s else "n/a"
    return (
        f"Time to first audio {first} · total {total:.2f} s · {audio_s:.2f} s of audio · RTF {rtf} "
        f"· voice {plan.voice_id}, {plan.language}, {plan.sample_rate} Hz"
    )


def build_blocks(gr: ModuleType, door: GradioDoor) -> Any:
    """The interface: a Speak tab and a Clone tab, filled from the engine when the page loads."""
    # The scheduler admits or refuses work (queue full: "busy"); Gradio must not queue it again
    # one at a time, hence no concurrency limit on the events.
    unlimited: dict[str, Any] = {"concurrency_limit": None}
    # Its files are swept by GradioFolder (doors/gradio/files.py), not by Gradio's delete_cache.
    with gr.Blocks(title="Sentiric TTS", analytics_enabled=False) as blocks:
        gr.Markdown("# Sentiric TTS\nThe same service as the [dashboard](../) and the API, through Gradio.")
        engine_line = gr.Markdown()
        with gr.Tab("Speak"):
            text = gr.Textbox(
                label="Text or SSML",
                lines=5,
                placeholder="Type what to say, or an SSML document starting with <speak>.",
            )
            with gr.Row():
                # Choices arrive on page load; a custom value lets API clients name any voice
                # and language, which the pipeline then checks with its own messages.
                voice = gr.Dropdown(label="Voice", allow_custom_value=True)
                language = gr.Dropdown(label="Language", allow_custom_value=True)
                speed = gr.Slider(MIN_SPEED, MAX_SPEED, value=1.0, step=0.05, label="Speed")
            speak_button = gr.Button("Speak", variant="primary")
            speech = gr.Audio(label="Speech (WAV)", format="wav", interactive=False, buttons=["download"])
            timing = gr.Markdown()
        with gr.Tab("Clone a voice"):
            clone_note = gr.Markdown(visible=False)
            with gr.Column(visible=False) as clone_panel:
                clips = gr.File(
                    label="Reference clips (a few seconds of clean speech each)", file_count="multiple"
                )
                clone_text = gr.Textbox(label="Text or SSML", lines=4)
                with gr.Row():
                    clone_language = gr.Dropdown(label="Language", allow_custom_value=True)
                    clone_speed = gr.Slider(MIN_SPEED, MAX_SPEED, value=1.0, step=0.05, label="Speed")
                clone_button = gr.Button("Speak in this voice", variant="primary")
                cloned = gr.Audio(label="Speech (WAV)", format="wav", interactive=False, buttons=["download"])
                clone_timing = gr.Markdown()

        async def speak(
            text: str | None, voice: str | None, language: str | None, speed: float, request: gr.Request
        ) -> tuple[bytes, str]:
            return await door.speak(text, voice, language, speed, request)

        async def clone(
            files: list[str] | None, text: str | None, language: str | None, speed: float, request: gr.Request
        ) -> tuple[bytes, str]:
            return await door.clone(files, text, language, speed, request)

        async def catalogue(request: gr.Request) -> tuple[Any, ...]:
            return await door.catalogue(request)

        speak_button.click(
            speak, [text, voice, language, speed], [speech, timing], api_name="speak", **unlimited
        )
        clone_button.click(
            clone,
            [clips, clone_text, clone_language, clone_speed],
            [cloned, clone_timing],
            api_name="clone",
            **unlimited,
        )
        blocks.load(
            catalogue,
            None,
            [voice, language, clone_language, clone_note, clone_panel, engine_line],
            api_visibility="private",
            **unlimited,
        )
    return blocks


def mount_gradio(app: FastAPI, settings: Settings) -> None:
    """Mount the interface at /gradio when enabled and installed; otherwise say why in one line."""
    if not settings.gradio.enabled:
        log.info("/gradio is off (TTS_GRADIO_ENABLED=false)")
        return
    gr = import_gradio(settings.paths.gradio_files_dir)
    if gr is None:
        log.info("/gradio is off: gradio is not installed (pip install 'sentiric-tts[gradio]')")
        return
    door = GradioDoor(app, gr)
    folder = GradioFolder(
        claim_process_folder(settings.paths.gradio_files_dir),
        settings.gradio.max_files,
        settings.gradio.max_bytes,
    )
    # With API keys set, the interface is no back door: Gradio's login takes a key as password.
    auth = door.login if settings.security.keys_required else None
    gr.mount_gradio_app(
        app,
        build_blocks(gr, door),
        path=GRADIO_PATH,
        app_kwargs={"lifespan": folder.swept},
        auth=auth,
        auth_message=LOGIN_MESSAGE if auth else None,
        footer_links=["api", "settings"],  # not "gradio": a link off an air-gapped host
        run_history=False,
        max_file_size=settings.voices.clone_max_file_bytes,
        ssr_mode=False,  # SSR would start a Node server beside ours
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        show_error=False,  # our errors are gr.Error with their message; anything else stays in the log
    )
    app.add_middleware(
        GradioFilesGuard,
        folder=folder,
        api_path=GRADIO_API_PATH,
        max_upload_files=settings.voices.clone_max_files,
    )
    log.info("Gradio interface at %s/ (files in %s)", GRADIO_PATH, folder.path)
