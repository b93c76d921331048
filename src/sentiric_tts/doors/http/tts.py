"""POST /api/tts: text in, speech out, whole or streamed."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from sentiric_tts.doors.http.audio_response import respond_with_audio
from sentiric_tts.doors.http.deps import client_identity, get_runtime
from sentiric_tts.doors.http.errors import ERROR_RESPONSES
from sentiric_tts.doors.http.schemas import CloneForm, PlanItemOut, PlanOut, TTSRequestBody
from sentiric_tts.doors.http.uploads import read_uploads
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.request import Mark, Pause, PlanItem

router = APIRouter(prefix="/api", tags=["synthesis"])

_AUDIO_RESPONSE = {
    200: {
        "description": "Audio in the requested format (chunked when `stream` is true).",
        "content": {"audio/wav": {}, "audio/L16": {}},
    }
}


@router.post(
    "/tts",
    summary="Synthesize speech",
    response_class=Response,
    responses={**_AUDIO_RESPONSE, **ERROR_RESPONSES},
)
async def tts(
    body: TTSRequestBody,
    http: Request,
    runtime: Runtime = Depends(get_runtime),
    client: str = Depends(client_identity),
) -> Response:
    return await respond_with_audio(runtime, http, client, body.to_request(), body.stream)


@router.post(
    "/tts/clone",
    summary="Synthesize speech in a voice cloned from reference clips (XTTS)",
    response_class=Response,
    responses={
        **_AUDIO_RESPONSE,
        **ERROR_RESPONSES,
        409: {"description": "The running engine cannot clone voices (Piper)."},
        413: {"description": "A reference clip is over the byte limit."},
    },
)
async def tts_clone(
    form: Annotated[CloneForm, Form()],
    files: Annotated[
        list[UploadFile], File(description="1-5 reference clips: wav, mp3, ogg/opus, webm, m4a, flac")
    ],
    http: Request,
    runtime: Runtime = Depends(get_runtime),
    client: str = Depends(client_identity),
) -> Response:
    clips = await read_uploads(files, runtime.settings.voices.clone_max_file_bytes)
    return await respond_with_audio(
        runtime, http, client, form.to_request(references=tuple(clips)), form.stream
    )


def _plan_item(item: PlanItem) -> PlanItemOut:
    if isinstance(item, Pause):
        return PlanItemOut(type="pause", seconds=round(item.seconds, 4))
    if isinstance(item, Mark):
        return PlanItemOut(type="mark", name=item.name)
    return PlanItemOut(
        type="speech",
        text=item.text,
        language=item.language,
        voice=item.voice.id,
        speed=item.params.speed,
        rate=item.prosody.rate,
        pitch_semitones=item.prosody.pitch_semitones,
        volume_db=item.prosody.volume_db,
    )


@router.post(
    "/tts/plan",
    summary="Show how a request would be spoken, without synthesizing",
    response_model=PlanOut,
    responses=ERROR_RESPONSES,
)
async def tts_plan(
    body: TTSRequestBody, runtime: Runtime = Depends(get_runtime), client: str = Depends(client_identity)
) -> PlanOut:
    plan = await anyio.to_thread.run_sync(runtime.plan, body.to_request(), client)
    return PlanOut(
        language=plan.language,
        voice=plan.voice_id,
        characters=plan.characters,
        output_format=plan.output_format,
        sample_rate=plan.sample_rate,
        ignored_tags=list(plan.ignored_tags),
        audio_seconds=round(plan.speech_seconds + plan.pause_seconds, 3),
        pause_seconds=round(plan.pause_seconds, 3),
        items=[_plan_item(item) for item in plan.items],
    )
