"""Piper's HTTP API (see the package doc), on the same pipeline as every door.

POST / and POST /synthesize take Piper's JSON, {text, voice, speaker, speaker_id, length_scale,
noise_scale, noise_w_scale} (numbers may come as strings, as Piper reads them with float()), or,
as Piper 1.2's server did, the text itself as the body. The answer is a WAV stream whose first
chunk is its canonical 44-byte header (the rate is in it), then PCM as it is made.

- voice: one of the engine's voices (GET /api/speakers); none: the default. Unlike Piper, which
  falls back to its default voice, an unknown voice is a 422 unknown_voice.
- length_scale: the speaking rate, as 1/speed (1: the voice's own pace).
- speaker, speaker_id, noise_scale, noise_w_scale: checked and accepted; a multi-speaker voice
  speaks with its default speaker, and the noise scales stay the service's.

GET / stays the dashboard (Piper's own GET / served its test page). Not in the OpenAPI document:
it is Piper's API, described in docs/clients.md.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sentiric_tts.doors.http.audio_response import respond_with_audio
from sentiric_tts.doors.http.deps import client_identity, get_runtime
from sentiric_tts.engines.base import GenerationParams
from sentiric_tts.failures import RequestError
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.request import SynthesisRequest

DOOR = "piper_http"

router = APIRouter(tags=["Piper"], include_in_schema=False, dependencies=[Depends(client_identity)])


class PiperBody(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    text: str
    voice: str | None = None
    speaker: str | None = None
    speaker_id: int | None = Field(None, ge=0)
    length_scale: float | None = Field(None, gt=0.0, le=10.0)
    noise_scale: float | None = Field(None, ge=0.0, le=10.0)
    noise_w_scale: float | None = Field(None, ge=0.0, le=10.0)


async def _body(http: Request) -> PiperBody:
    raw = await http.body()
    try:
        data = json.loads(raw)
    except ValueError:  # not JSON (UnicodeDecodeError is a ValueError too)
        data = None
    if data is None and "json" not in http.headers.get("content-type", "").lower():
        try:
            return PiperBody(text=raw.decode("utf-8"))  # Piper 1.2: the body is the text
        except UnicodeDecodeError:
            raise RequestError(
                "The body is neither JSON nor UTF-8 text.", param="text", code="invalid_body"
            ) from None
    if not isinstance(data, dict):
        raise RequestError(
            'Send a JSON object, e.g. {"text": "Hello.", "voice": "en_US-joe-medium"}, or the text '
            "itself as a text/plain body.",
            code="invalid_body",
        )
    try:
        return PiperBody.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


async def _synthesize(http: Request, runtime: Runtime, client: str) -> Response:
    body = await _body(http)
    speed = 1.0 if body.length_scale is None else 1.0 / body.length_scale
    request = SynthesisRequest(
        text=body.text.strip(),
        voice=(body.voice or "").strip() or None,
        params=GenerationParams(speed=speed),
        output_format="wav",
        detect_language=runtime.settings.openai.detect_language,
    )
    return await respond_with_audio(runtime, http, client, request, stream=True, door=DOOR)


@router.post("/")
async def synthesize_root(
    http: Request, runtime: Runtime = Depends(get_runtime), client: str = Depends(client_identity)
) -> Response:
    return await _synthesize(http, runtime, client)


@router.post("/synthesize")
async def synthesize(
    http: Request, runtime: Runtime = Depends(get_runtime), client: str = Depends(client_identity)
) -> Response:
    return await _synthesize(http, runtime, client)
