"""Audio as an HTTP response: its headers, a stream as it is made, or a whole file (from memory,
or spooled to disk when large); shared by every HTTP door that answers with audio."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote

import anyio
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.stream import AudioStream

_DISCONNECT_POLL_S = 0.25
_FILE_CHUNK_BYTES = 256 * 1024
# Header values are Latin-1 on the wire: printable ASCII passes, anything else is percent-encoded
# (an SSML tag or a voice id may be any Unicode).
_HEADER_SAFE = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) != "%")


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


async def collect_unless_gone(http: Request, audio: AudioStream) -> bytes | None:
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
    runtime: Runtime, http: Request, client: str, request: SynthesisRequest, stream: bool, door: str = "http"
) -> Response:
    """Admit, plan and answer: shared by every HTTP synthesis route (`door` labels its metrics)."""
    audio = await runtime.open_speech(request, client, door=door)
    return await answer_with_audio(runtime, http, audio, stream)


async def answer_with_audio(runtime: Runtime, http: Request, audio: AudioStream, stream: bool) -> Response:
    """An opened stream as the response: sent as it is made, or collected into one file."""
    http.state.audio_stream = audio  # for the request's log line
    headers = audio_headers(audio)
    if stream:
        return StreamingResponse(audio.chunks(), media_type=audio.content_type, headers=headers)
    body = await collect_unless_gone(http, audio)
    if body is None:
        return Response(status_code=499)  # nobody is listening; nginx's "client closed request"
    headers["X-Audio-Duration"] = f"{audio.audio_seconds:.3f}"
    return await whole_file_response(
        body,
        audio.content_type,
        headers,
        runtime.settings.server.whole_file_memory_bytes,
        runtime.settings.paths.data_dir,
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
