"""POST /api/tts: text in, speech out, whole or streamed."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse

from sentiric_tts.api.deps import get_runtime
from sentiric_tts.api.errors import ERROR_RESPONSES
from sentiric_tts.api.schemas import TTSRequestBody
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.pipeline import AudioStream
from sentiric_tts.synthesis.request import SynthesisRequest

router = APIRouter(prefix="/api", tags=["synthesis"])

_AUDIO_RESPONSE = {
    200: {
        "description": "Audio in the requested format (chunked when `stream` is true).",
        "content": {"audio/wav": {}, "audio/L16": {}},
    }
}


def _audio_headers(stream: AudioStream) -> dict[str, str]:
    plan = stream.plan
    return {
        "X-Sample-Rate": str(plan.sample_rate),
        "X-Voice": plan.voice_id,
        "X-Language": plan.language,
        "Content-Disposition": f'inline; filename="speech.{stream.file_extension}"',
    }


async def respond_with_audio(runtime: Runtime, request: SynthesisRequest, stream: bool) -> Response:
    """Plan, admit and answer: shared by every HTTP synthesis route."""
    plan = runtime.pipeline.plan(request)
    audio = runtime.pipeline.open_stream(plan)
    headers = _audio_headers(audio)
    if stream:
        return StreamingResponse(audio.chunks(), media_type=audio.content_type, headers=headers)
    body = await audio.collect()
    headers["X-Audio-Duration"] = f"{audio.audio_seconds:.3f}"
    return Response(body, media_type=audio.content_type, headers=headers)


@router.post(
    "/tts",
    summary="Synthesize speech",
    response_class=Response,
    responses={**_AUDIO_RESPONSE, **ERROR_RESPONSES},
)
async def tts(body: TTSRequestBody, runtime: Runtime = Depends(get_runtime)) -> Response:
    return await respond_with_audio(runtime, body.to_request(), body.stream)
