"""POST /api/tts: text in, speech out, whole or streamed."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from sentiric_tts.api.deps import client_identity, get_runtime
from sentiric_tts.api.errors import ERROR_RESPONSES
from sentiric_tts.api.schemas import CloneForm, PlanItemOut, PlanOut, TTSRequestBody
from sentiric_tts.failures import Failure, RequestError
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.request import Mark, Pause, PlanItem, SynthesisRequest
from sentiric_tts.synthesis.stream import AudioStream

router = APIRouter(prefix="/api", tags=["synthesis"])

_DISCONNECT_POLL_S = 0.25
_FILE_CHUNK_BYTES = 256 * 1024
# Header values are Latin-1 on the wire: printable ASCII passes, anything else is percent-encoded
# (an SSML tag or a voice id may be any Unicode).
_HEADER_SAFE = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) != "%")

_AUDIO_RESPONSE = {
    200: {
        "description": "Audio in the requested format (chunked when `stream` is true).",
        "content": {"audio/wav": {}, "audio/L16": {}},
    }
}


def header_value(text: str) -> str:
    return quote(text, safe=_HEADER_SAFE, errors="replace")


def audio_headers(stream: AudioStream) -> dict[str, str]:
    plan = stream.plan
    headers = {
        "X-Sample-Rate": str(plan.sample_rate),
        "X-Voice": header_value(plan.voice_id),
        "X-Language": header_value(plan.language),
        "Content-Disposition": f'inline; filename="speech.{stream.file_extension}"',
    }
    if plan.ignored_tags:
        headers["X-SSML-Ignored-Tags"] = header_value(",".join(plan.ignored_tags))
    return headers


async def _collect_unless_gone(http: Request, audio: AudioStream) -> bytes | None:
    """The whole file, or None when the client disconnected first (its work is cancelled)."""
    task = asyncio.ensure_future(audio.collect())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await http.is_disconnected():
                audio.cancel()
                return None
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def respond_with_audio(
    runtime: Runtime, http: Request, client: str, request: SynthesisRequest, stream: bool
) -> Response:
    """Admit, plan and answer: shared by every HTTP synthesis route."""
    audio = await runtime.open_speech(request, client, door="http")
    http.state.audio_stream = audio  # for the request's log line
    headers = audio_headers(audio)
    if stream:
        return StreamingResponse(audio.chunks(), media_type=audio.content_type, headers=headers)
    body = await _collect_unless_gone(http, audio)
    if body is None:
        return Response(status_code=499)  # nobody is listening; nginx's "client closed request"
    headers["X-Audio-Duration"] = f"{audio.audio_seconds:.3f}"
    return await whole_file_response(
        body, audio.content_type, headers, runtime.settings.whole_file_memory_bytes, runtime.settings.data_dir
    )


async def whole_file_response(
    body: bytes, media_type: str, headers: dict[str, str], memory_bytes: int, data_dir: Path
) -> Response:
    """A whole file, sent from memory when small, else from a temporary file under
    `data_dir`/tmp: a client that reads slowly then holds disk, not memory, for as long as it takes."""
    if len(body) <= memory_bytes:
        return Response(body, media_type=media_type, headers=headers)
    spool = await anyio.to_thread.run_sync(_spooled, body, data_dir / "tmp")
    del body  # the file is the copy that lives while the client reads
    headers["Content-Length"] = str(spool.seek(0, 2))
    spool.seek(0)
    return StreamingResponse(_read_chunks(spool), media_type=media_type, headers=headers)


def _spooled(body: bytes, folder: Path) -> IO[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    # No name: gone when closed, or when the process dies. Open past this function: it is sent.
    spool = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115
    spool.write(body)
    return spool


def _read_chunks(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(_FILE_CHUNK_BYTES):
            yield chunk


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


async def read_uploads(files: list[UploadFile], max_bytes: int) -> list[tuple[str, bytes]]:
    """Read uploaded clips, refusing one over the byte limit without reading all of it."""
    clips: list[tuple[str, bytes]] = []
    for index, upload in enumerate(files):
        name = upload.filename or f"file {index + 1}"
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise RequestError(
                f"Reference '{name}' is over the limit of {max_bytes} bytes.",
                param="files",
                code="reference_too_large",
                kind=Failure.TOO_LARGE,
            )
        clips.append((name, data))
    return clips


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
    clips = await read_uploads(files, runtime.settings.clone_max_file_bytes)
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
    plan = runtime.plan(body.to_request(), client)
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
