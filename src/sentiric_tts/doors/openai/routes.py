"""The OpenAI-compatible door: /v1/audio/speech and the listings OpenAI clients ask for.

A drop-in for OpenAI's SDKs, Open WebUI and the like: same fields, same error object (see
doors/http/errors.py), `Authorization: Bearer` auth. It builds the same SynthesisRequest as every door.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from sentiric_tts.doors.http.audio_response import audio_headers
from sentiric_tts.doors.http.deps import client_identity, get_runtime
from sentiric_tts.doors.http.errors import ERROR_RESPONSES, HTTP_STATUS, openai_error_body
from sentiric_tts.doors.http.security import presented_key
from sentiric_tts.doors.openai.schemas import (
    OPENAI_PCM_RATE,
    SPEECH_MODELS,
    AudioModelOut,
    AudioModelsOut,
    AudioVoiceOut,
    AudioVoicesOut,
    ModelListOut,
    ModelOut,
    SpeechBody,
)
from sentiric_tts.engines.base import VoiceInfo
from sentiric_tts.failures import DeadlineExceeded, Failure, RequestError, SynthesisFailed, problem
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.stream import AudioStream
from sentiric_tts.voices.access import NO_ACCESS

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

_STARTED = int(time.time())


def listing_client(http: Request) -> str | None:
    """Who reads a listing: as for any route when a key is presented, keys are off, or the
    listings need one (TTS_OPENAI_LISTINGS_REQUIRE_KEY); else None, a keyless reader on a keyed
    service (Open WebUI reads the listings without its key), who sees no library voice."""
    runtime = get_runtime(http)
    if (
        runtime.api_keys.enabled
        and not runtime.settings.openai.listings_require_key
        and presented_key(http) is None
    ):
        return None
    return client_identity(http)


def _listed_voices(runtime: Runtime, client: str | None) -> list[VoiceInfo]:
    access = NO_ACCESS if client is None else runtime.library_access(client)
    return runtime.pipeline.catalogue.voices(access)


def _model_out(model: str) -> ModelOut:
    return ModelOut(id=model, created=_STARTED)


def _check_model(model: str) -> None:
    if model not in SPEECH_MODELS:
        raise RequestError(
            f"Unknown model '{model}'. Use one of: {', '.join(SPEECH_MODELS)} "
            "(each speaks with this service's engine).",
            param="model",
            code="model_not_found",
            kind=Failure.NOT_FOUND,
            allowed=SPEECH_MODELS,
        )


def _voice(runtime: Runtime, requested: str, client: str) -> str | None:
    """Our voice for a client's voice name: OpenAI's names go through the configured map."""
    mapped = runtime.settings.openai.voices.get(requested.strip().lower())
    if mapped is None:
        return requested  # a built-in speaker or library voice; the pipeline says if unknown
    voices = runtime.pipeline.catalogue.voices(runtime.library_access(client))
    known = {name for info in voices for name in (info.id, info.name)}
    return mapped if mapped in known else None  # None: the default voice


def _speech_request(runtime: Runtime, body: SpeechBody, client: str) -> SynthesisRequest:
    output_format = body.response_format.strip().lower()
    sample_rate = body.sample_rate
    if sample_rate is None and output_format == "pcm":
        sample_rate = OPENAI_PCM_RATE
    return SynthesisRequest(
        text=body.input,
        language=body.language,
        voice=_voice(runtime, body.voice_name, client),
        params=body.generation_params(),
        output_format=output_format,
        sample_rate=sample_rate,
        ssml=None if body.text_type is None else body.text_type == "ssml",
        volume_gain_db=body.volume_gain_db,
        detect_language=runtime.settings.openai.detect_language,
    )


def _sse(event: dict[str, object]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


async def _speech_events(audio: AudioStream) -> AsyncIterator[bytes]:
    """OpenAI's speech SSE stream: audio deltas, then done with usage (or an error event)."""
    try:
        async for chunk in audio.chunks():
            yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode("ascii")})
    except (SynthesisFailed, DeadlineExceeded) as exc:
        told = problem(exc)
        yield _sse({"type": "error", **openai_error_body(HTTP_STATUS[told.kind], told.code, told.message)})
        return
    # Usage is counted in characters of input: the engines have no tokens to count.
    characters = audio.plan.characters
    usage = {"input_tokens": characters, "output_tokens": 0, "total_tokens": characters}
    yield _sse({"type": "speech.audio.done", "usage": usage})


@router.post(
    "/audio/speech",
    dependencies=[Depends(client_identity)],
    summary="Create speech (OpenAI-compatible)",
    response_class=Response,
    responses={
        200: {
            "description": "Audio as it is made (its type follows `response_format`), or SSE events.",
            "content": {
                content_type: {}
                for content_type in (
                    "audio/mpeg",
                    "audio/ogg",
                    "audio/aac",
                    "audio/flac",
                    "audio/wav",
                    "audio/L16",
                    "audio/PCMU",
                    "audio/PCMA",
                    "text/event-stream",
                )
            },
        },
        **ERROR_RESPONSES,
        400: {"description": "A field is wrong; OpenAI's error object says which."},
        404: {"description": "Unknown model."},
    },
)
async def create_speech(
    body: SpeechBody,
    http: Request,
    runtime: Runtime = Depends(get_runtime),
    client: str = Depends(client_identity),
) -> Response:
    _check_model(body.model)
    audio = await runtime.open_speech(_speech_request(runtime, body, client), client, door="openai")
    http.state.audio_stream = audio  # for the request's log line
    headers = audio_headers(audio)
    if body.stream_format == "sse":
        return StreamingResponse(_speech_events(audio), media_type="text/event-stream", headers=headers)
    return StreamingResponse(audio.chunks(), media_type=audio.content_type, headers=headers)


@router.get(
    "/models",
    response_model=ModelListOut,
    summary="Models (OpenAI-compatible)",
    dependencies=[Depends(listing_client)],
)
async def list_models() -> ModelListOut:
    return ModelListOut(data=[_model_out(model) for model in SPEECH_MODELS])


@router.get(
    "/models/{model}",
    response_model=ModelOut,
    summary="One model (OpenAI-compatible)",
    responses={404: {"description": "Unknown model."}},
    dependencies=[Depends(listing_client)],
)
async def get_model(model: str) -> ModelOut:
    _check_model(model)
    return _model_out(model)


@router.get(
    "/audio/models",
    response_model=AudioModelsOut,
    summary="Speech models (Open WebUI)",
    dependencies=[Depends(listing_client)],
)
async def audio_models() -> AudioModelsOut:
    return AudioModelsOut(models=[AudioModelOut(id=model) for model in SPEECH_MODELS])


@router.get("/audio/voices", response_model=AudioVoicesOut, summary="Voices (Open WebUI)")
async def audio_voices(
    runtime: Runtime = Depends(get_runtime), client: str | None = Depends(listing_client)
) -> AudioVoicesOut:
    """OpenAI's names (with the voice each speaks with here), then every voice the caller may use
    (a keyless reader on a keyed service: the engine's own voices only)."""
    catalogue = runtime.pipeline.catalogue
    voices = _listed_voices(runtime, client)
    known = {name for info in voices for name in (info.id, info.name)}
    languages = catalogue.languages()
    default = catalogue.default_voice
    aliases = [
        AudioVoiceOut(
            id=name,
            name=f"{name} ({voice if voice in known else default})",
            kind="openai",
            languages=languages,
        )
        for name, voice in runtime.settings.openai.voices.items()
    ]
    own = [
        AudioVoiceOut(id=info.id, name=info.name, kind=info.kind, languages=list(info.languages))
        for info in voices
    ]
    return AudioVoicesOut(voices=aliases + own)
