"""/api/voices: every voice in one listing, and the voice library (saved cloned voices)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response

from sentiric_tts.audio.encoders import wav_header
from sentiric_tts.audio.pcm import float_to_int16
from sentiric_tts.audio.reference import ReferenceLimits, load_references
from sentiric_tts.doors.http.deps import client_identity, get_runtime
from sentiric_tts.doors.http.errors import ERROR_RESPONSES, STORAGE_RESPONSES
from sentiric_tts.doors.http.schemas import (
    LibrarySampleOut,
    LibraryVoiceOut,
    VoiceOut,
    VoicePatchBody,
    VoicesOut,
)
from sentiric_tts.doors.http.uploads import read_uploads
from sentiric_tts.engines.base import VoiceInfo
from sentiric_tts.failures import Failure, RequestError
from sentiric_tts.runtime import Runtime
from sentiric_tts.settings import LONGEST_REFERENCE_SECONDS
from sentiric_tts.voices.access import LibraryAccess
from sentiric_tts.voices.library_records import VOICE_ID, LibraryVoice
from sentiric_tts.voices.library_rules import voice_not_found
from sentiric_tts.voices.library_service import LibraryService

router = APIRouter(prefix="/api", tags=["voices"], dependencies=[Depends(client_identity)])

T = TypeVar("T")

_FILES = File(description="1-5 reference clips: wav, mp3, ogg/opus, webm, m4a, flac")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No voice (or sample) with this id, or none this API key may see."}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "voice_name_taken, builtin_voice (the engine's own voices cannot be changed), "
        "last_sample, voice_library_full, sample_missing (a clip file is lost), or "
        "cloning_unavailable (cloning needs XTTS)."
    }
}
_TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": "A reference clip is over the byte limit."}
}


def _library(runtime: Runtime) -> LibraryService:
    return runtime.pipeline.catalogue.library


def _voice_out(library: LibraryService, voice: LibraryVoice) -> LibraryVoiceOut:
    return LibraryVoiceOut(
        id=voice.id,
        name=voice.name,
        languages=list(library.info(voice).languages),
        language=voice.language,
        description=voice.description,
        created_at=voice.created_at,
        updated_at=voice.updated_at,
        samples=[LibrarySampleOut(id=s.id, filename=s.filename, seconds=s.seconds) for s in voice.samples],
    )


def _engine_voice_out(info: VoiceInfo) -> VoiceOut:
    return VoiceOut(
        id=info.id,
        name=info.name,
        kind=info.kind,
        languages=list(info.languages),
        description=info.description,
    )


def _builtin(runtime: Runtime, voice_id: str) -> VoiceInfo | None:
    return next((info for info in runtime.engine.voices() if info.id == voice_id), None)


def _library_voice(runtime: Runtime, voice_id: str, action: str, access: LibraryAccess) -> LibraryVoice:
    """The library voice this URL names; 409 for an engine voice, 404 for anything else
    (another key's voice included).

    Ids are matched against the strict id pattern before the store touches the file system."""
    if VOICE_ID.fullmatch(voice_id):
        return _library(runtime).get(voice_id, access)
    if _builtin(runtime, voice_id) is not None:
        raise RequestError(
            f"'{voice_id}' is one of the {runtime.engine.name} engine's own voices: it cannot be "
            f"{action}. Only library voices (kind library) can.",
            param="voice_id",
            code="builtin_voice",
            kind=Failure.CONFLICT,
        )
    raise voice_not_found(voice_id)


@dataclass(frozen=True)
class LibraryTarget:
    """What a route on one library voice works with: the library, the caller's access to it, and
    the voice the URL names (checked to exist and be visible to this caller)."""

    library: LibraryService
    access: LibraryAccess
    voice: LibraryVoice


def library_target(action: str) -> Callable[..., LibraryTarget]:
    """A dependency giving the LibraryTarget of `/voices/{voice_id}`, or the route's 404/409 in
    `action`'s words. A plain function, so FastAPI runs it on a worker thread: the lookup may wait
    on the library's database."""

    def dependency(
        voice_id: str, runtime: Runtime = Depends(get_runtime), client: str = Depends(client_identity)
    ) -> LibraryTarget:
        access = runtime.library_access(client)
        return LibraryTarget(_library(runtime), access, _library_voice(runtime, voice_id, action, access))

    return dependency


async def _admitted(runtime: Runtime, client: str, work: Callable[[], Awaitable[T]]) -> T:
    """Cloning work under the client's rate limit and request allowance, like synthesis."""
    release = runtime.admit_client(client)
    try:
        return await work()
    finally:
        release()


@router.get("/voices", response_model=VoicesOut, summary="Every voice: the engine's own and the library's")
async def list_voices(
    runtime: Runtime = Depends(get_runtime), client: str = Depends(client_identity)
) -> VoicesOut:
    library = _library(runtime)
    engine_voices: list[VoiceOut | LibraryVoiceOut] = [_engine_voice_out(v) for v in runtime.engine.voices()]
    visible = await anyio.to_thread.run_sync(library.visible, runtime.library_access(client))
    saved = [_voice_out(library, voice) for voice in visible]
    return VoicesOut(default=runtime.pipeline.catalogue.default_voice, voices=engine_voices + saved)


@router.post(
    "/voices",
    response_model=LibraryVoiceOut,
    status_code=201,
    summary="Save a voice cloned from 1-5 reference clips (XTTS)",
    responses={**ERROR_RESPONSES, **_CONFLICT, **_TOO_LARGE, **STORAGE_RESPONSES},
)
async def create_voice(
    name: Annotated[str, Form(description="1-64 characters, unique (case-insensitive).")],
    files: Annotated[list[UploadFile], _FILES],
    language: Annotated[str | None, Form(description="The voice's own language, e.g. en (optional).")] = None,
    description: Annotated[str, Form(description="Free text, up to 500 characters.")] = "",
    runtime: Runtime = Depends(get_runtime),
    client: str = Depends(client_identity),
) -> LibraryVoiceOut:
    library = _library(runtime)
    clips = await read_uploads(files, runtime.settings.voices.clone_max_file_bytes)
    access = runtime.library_access(client)
    voice = await _admitted(
        runtime, client, lambda: library.create(name, language, description, clips, access)
    )
    return _voice_out(library, voice)


@router.get(
    "/voices/{voice_id}",
    response_model=LibraryVoiceOut | VoiceOut,
    summary="One voice",
    responses={**ERROR_RESPONSES, **_NOT_FOUND},
)
async def get_voice(
    voice_id: str, runtime: Runtime = Depends(get_runtime), client: str = Depends(client_identity)
) -> LibraryVoiceOut | VoiceOut:
    builtin = None if VOICE_ID.fullmatch(voice_id) else _builtin(runtime, voice_id)
    if builtin is not None:
        return _engine_voice_out(builtin)
    access = runtime.library_access(client)
    voice = await anyio.to_thread.run_sync(_library_voice, runtime, voice_id, "read", access)
    return _voice_out(_library(runtime), voice)


@router.patch(
    "/voices/{voice_id}",
    response_model=LibraryVoiceOut,
    summary="Rename a library voice, or change its description or language",
    responses={**ERROR_RESPONSES, **_NOT_FOUND, **_CONFLICT, **STORAGE_RESPONSES},
)
async def patch_voice(
    body: VoicePatchBody, target: LibraryTarget = Depends(library_target("changed"))
) -> LibraryVoiceOut:
    voice = await anyio.to_thread.run_sync(
        lambda: target.library.update(
            target.voice.id,
            target.access,
            name=body.name,
            description=body.description,
            language=body.language,
            set_language="language" in body.model_fields_set,
        )
    )
    return _voice_out(target.library, voice)


@router.delete(
    "/voices/{voice_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a library voice, its clips and latents",
    responses={**ERROR_RESPONSES, **_NOT_FOUND, **_CONFLICT, **STORAGE_RESPONSES},
)
async def delete_voice(target: LibraryTarget = Depends(library_target("deleted"))) -> Response:
    await anyio.to_thread.run_sync(target.library.delete, target.voice.id, target.access)
    return Response(status_code=204)


@router.post(
    "/voices/{voice_id}/samples",
    response_model=LibraryVoiceOut,
    summary="Add reference clips to a library voice (its latents are recomputed)",
    responses={**ERROR_RESPONSES, **_NOT_FOUND, **_CONFLICT, **_TOO_LARGE, **STORAGE_RESPONSES},
)
async def add_samples(
    files: Annotated[list[UploadFile], _FILES],
    target: LibraryTarget = Depends(library_target("given samples")),
    runtime: Runtime = Depends(get_runtime),
    client: str = Depends(client_identity),
) -> LibraryVoiceOut:
    clips = await read_uploads(files, runtime.settings.voices.clone_max_file_bytes)
    voice = await _admitted(
        runtime, client, lambda: target.library.add_samples(target.voice.id, clips, target.access)
    )
    return _voice_out(target.library, voice)


@router.delete(
    "/voices/{voice_id}/samples/{sample_id}",
    response_model=LibraryVoiceOut,
    summary="Remove one reference clip from a library voice (its latents are recomputed)",
    responses={**ERROR_RESPONSES, **_NOT_FOUND, **_CONFLICT, **STORAGE_RESPONSES},
)
async def remove_sample(
    sample_id: str,
    target: LibraryTarget = Depends(library_target("changed")),
    runtime: Runtime = Depends(get_runtime),
    client: str = Depends(client_identity),
) -> LibraryVoiceOut:
    voice = await _admitted(
        runtime, client, lambda: target.library.remove_sample(target.voice.id, sample_id, target.access)
    )
    return _voice_out(target.library, voice)


def _clip_as_wav(name: str, data: bytes) -> bytes:
    # Decoded the way cloning decodes it (mono, 22050 Hz, silence trimmed): any browser plays a
    # WAV whatever was uploaded. The clip passed the limits when it was stored, under a setting
    # that may since have changed, so only the ceiling of that setting bounds its decoding.
    limits = ReferenceLimits(
        max_files=1, max_file_bytes=len(data), max_seconds=LONGEST_REFERENCE_SECONDS, min_speech_seconds=0
    )
    references = load_references([(name, data)], limits)
    pcm = float_to_int16(references.clips[0]).tobytes()
    return wav_header(references.sample_rate, len(pcm)) + pcm


@router.get(
    "/voices/{voice_id}/sample",
    response_class=Response,
    summary="Play a library voice's reference clip (default: its first) as WAV",
    responses={
        200: {"description": "The clip, decoded, as 16-bit mono WAV.", "content": {"audio/wav": {}}},
        **ERROR_RESPONSES,
        **_NOT_FOUND,
        **_CONFLICT,
    },
)
async def play_sample(
    sample_id: Annotated[str | None, Query(description="Which sample (default: the first).")] = None,
    target: LibraryTarget = Depends(library_target("played (it has no reference clips)")),
) -> Response:
    name, data = await anyio.to_thread.run_sync(
        target.library.sample_file, target.voice.id, sample_id, target.access
    )
    body = await anyio.to_thread.run_sync(_clip_as_wav, name, data)
    return Response(
        body, media_type="audio/wav", headers={"Content-Disposition": 'inline; filename="sample.wav"'}
    )
