"""xtts-api-server's routes (see the package doc), on the same pipeline as every door.

- GET /speakers ([{name, voice_id, preview_url}], what SillyTavern lists), /speakers_list (the
  voice ids), /languages ({"languages": {name: code}}), /get_tts_settings, /get_models_list;
- POST /set_tts_settings: the caller's own defaults (caller_settings.py), never the server's;
- POST /tts_to_audio/ {text, speaker_wav, language} -> a WAV file;
- GET /tts_stream?text=&speaker_wav=&language= -> a WAV header, then PCM as it is made (what
  SillyTavern's streaming mode puts in an <audio> element);
- GET /sample/{voice}.wav: a short sample of a voice (the preview_url of /speakers);
- what the original changes for the whole server (output and speaker folders, the loaded model,
  files written on the server) is refused with 422 not_supported.

`speaker_wav` names a voice (the `voice_id` of /speakers; a trailing `.wav` is allowed, as the
original took file names). Every path also answers with or without its trailing slash (SillyTavern
asks for /tts_stream/, the original served /tts_stream). Not in the OpenAPI document: it is this
other server's API, described in docs/clients.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sentiric_tts.doors.http.audio_response import respond_with_audio
from sentiric_tts.doors.http.deps import client_identity, get_runtime
from sentiric_tts.doors.xtts_api import PREFIX
from sentiric_tts.doors.xtts_api.caller_settings import (
    CallerSettings,
    TtsSettings,
    TtsSettingsBody,
    generation_params,
)
from sentiric_tts.failures import Failure, RequestError
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.request import SynthesisRequest

DOOR = "xtts_api"

LANGUAGE_NAMES = {
    "ar": "Arabic",
    "pt": "Brazilian Portuguese",
    "zh-cn": "Chinese",
    "cs": "Czech",
    "nl": "Dutch",
    "en": "English",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pl": "Polish",
    "ru": "Russian",
    "es": "Spanish",
    "tr": "Turkish",
    "ja": "Japanese",
    "ko": "Korean",
    "hu": "Hungarian",
    "hi": "Hindi",
}
"""xtts-api-server's names for XTTS v2's languages; another code is named by itself."""


class SynthesisBody(BaseModel):
    """POST /tts_to_audio/, as SillyTavern sends it."""

    model_config = ConfigDict(extra="ignore")

    text: str
    speaker_wav: str | None = Field(None, description="A voice_id from /speakers; none: the default.")
    language: str | None = Field(None, description="A language code; none or 'auto': detected.")
    save_path: str | None = Field(None, description="Refused: nothing is written on the server.")


class SpeakerOut(BaseModel):
    name: str
    voice_id: str
    preview_url: str


def _both(path: str) -> list[str]:
    return [path, f"{path}/"]


def _not_supported(what: str) -> RequestError:
    return RequestError(
        f"{what} is not supported here: this service keeps no output or speaker folders, writes no "
        "files and switches no models for a caller. Voices are listed at "
        f"{PREFIX}/speakers; audio comes back in the response.",
        code="not_supported",
        kind=Failure.UNSUPPORTED,
    )


def build_router() -> APIRouter:
    """The door's routes, with the per-caller settings of one app."""
    router = APIRouter(
        prefix=PREFIX,
        tags=["xtts-api-server"],
        include_in_schema=False,
        dependencies=[Depends(client_identity)],
    )
    caller_settings = CallerSettings()

    def voice_for(runtime: Runtime, client: str, speaker_wav: str | None) -> str | None:
        name = (speaker_wav or "").strip()
        if not name:
            return None
        voices = runtime.pipeline.catalogue.voices(runtime.library_access(client))
        known = {n for info in voices for n in (info.id, info.name)}
        if name not in known and name.lower().endswith(".wav") and name[:-4] in known:
            return name[:-4]  # a file name, as the original took them
        return name  # the pipeline says when it is unknown

    def speech_request(
        runtime: Runtime, client: str, text: str, speaker_wav: str | None, language: str | None
    ) -> SynthesisRequest:
        settings, explicit = caller_settings.get(client)
        code = (language or "").strip()
        return SynthesisRequest(
            text=text,
            language=None if code.lower() in ("", "auto") else code,
            voice=voice_for(runtime, client, speaker_wav),
            params=generation_params(settings, set(explicit)),
            output_format="wav",
            detect_language=runtime.settings.openai.detect_language,
        )

    @router.get("/speakers")
    async def speakers(
        http: Request, runtime: Runtime = Depends(get_runtime), client: str = Depends(client_identity)
    ) -> list[SpeakerOut]:
        base = str(http.base_url).rstrip("/") + PREFIX
        return [
            SpeakerOut(name=info.name, voice_id=info.id, preview_url=f"{base}/sample/{quote(info.id)}.wav")
            for info in runtime.pipeline.catalogue.voices(runtime.library_access(client))
        ]

    @router.get("/speakers_list")
    async def speakers_list(
        runtime: Runtime = Depends(get_runtime), client: str = Depends(client_identity)
    ) -> list[str]:
        return [info.id for info in runtime.pipeline.catalogue.voices(runtime.library_access(client))]

    @router.get("/languages")
    async def languages(runtime: Runtime = Depends(get_runtime)) -> dict[str, dict[str, str]]:
        codes = runtime.pipeline.catalogue.languages()
        return {"languages": {LANGUAGE_NAMES.get(code, code): code for code in codes}}

    @router.get("/get_tts_settings")
    async def get_tts_settings(client: str = Depends(client_identity)) -> TtsSettings:
        return caller_settings.get(client)[0]

    @router.post("/set_tts_settings")
    async def set_tts_settings(
        body: TtsSettingsBody, client: str = Depends(client_identity)
    ) -> dict[str, str]:
        caller_settings.update(client, body)
        return {"message": "Settings successfully applied"}

    @router.get("/get_models_list")
    async def get_models_list(runtime: Runtime = Depends(get_runtime)) -> list[str]:
        return [runtime.engine.name]

    for path in _both("/tts_to_audio"):

        @router.post(path)
        async def tts_to_audio(
            body: SynthesisBody,
            http: Request,
            runtime: Runtime = Depends(get_runtime),
            client: str = Depends(client_identity),
        ) -> Response:
            if body.save_path:
                raise _not_supported("save_path")
            request = speech_request(runtime, client, body.text, body.speaker_wav, body.language)
            return await respond_with_audio(runtime, http, client, request, stream=False, door=DOOR)

    for path in _both("/tts_stream"):

        @router.get(path)
        async def tts_stream(
            http: Request,
            text: Annotated[str, Query()],
            speaker_wav: Annotated[str | None, Query()] = None,
            language: Annotated[str | None, Query()] = None,
            runtime: Runtime = Depends(get_runtime),
            client: str = Depends(client_identity),
        ) -> Response:
            request = speech_request(runtime, client, text, speaker_wav, language)
            return await respond_with_audio(runtime, http, client, request, stream=True, door=DOOR)

    @router.get("/sample/{file_name:path}")
    async def sample(
        file_name: str,
        http: Request,
        runtime: Runtime = Depends(get_runtime),
        client: str = Depends(client_identity),
    ) -> Response:
        voice = file_name.removesuffix(".wav")
        found = next(
            (
                info
                for info in runtime.pipeline.catalogue.voices(runtime.library_access(client))
                if voice in (info.id, info.name)
            ),
            None,
        )
        if found is None:
            raise RequestError(
                f"No voice '{voice}' to sample; {PREFIX}/speakers lists the voices.",
                param="file_name",
                code="unknown_voice",
                kind=Failure.NOT_FOUND,
            )
        request = SynthesisRequest(
            text=f"Hello, this is {found.name}.",
            language="en" if "en" in found.languages else None,
            voice=found.id,
            ssml=False,
        )
        return await respond_with_audio(runtime, http, client, request, stream=False, door=DOOR)

    refused: dict[str, tuple[str, str]] = {
        "/get_folders": ("GET", "Output and speaker folders"),
        "/set_output": ("POST", "Setting an output folder"),
        "/set_speaker_folder": ("POST", "Setting a speaker folder"),
        "/switch_model": ("POST", "Switching the model"),
        "/tts_to_file": ("POST", "Writing audio to a file on the server"),
    }
    for path, (method, what) in refused.items():
        router.add_api_route(path, _refusal(what), methods=[method])

    return router


def _refusal(what: str) -> Callable[[], Awaitable[None]]:
    async def refuse() -> None:
        raise _not_supported(what)

    return refuse
