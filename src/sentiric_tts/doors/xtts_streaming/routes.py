"""Coqui xtts-streaming-server's routes (see the package doc), on the same pipeline as every door.

- GET /studio_speakers: {voice: {speaker_embedding: [512], gpt_cond_latent: [[width]...]}};
- POST /tts_stream {text, language, speaker_embedding, gpt_cond_latent, add_wav_header,
  stream_chunk_size}: 24 kHz s16le as it is made, after a WAV header when add_wav_header (the
  default, as in the original);
- POST /tts {text, language, speaker_embedding, gpt_cond_latent}: a JSON string, the base64 of a
  24 kHz WAV file;
- GET /languages: the language codes; POST /clone_speaker (multipart `wav_file`): its latents.

On XTTS the posted vectors are the voice, used as given: latents from /clone_speaker, from
/studio_speakers or from any XTTS v2 server speak (true zero-shot). On Piper the vectors of
/studio_speakers stand for its voices (voice_vectors.py): a posted vector speaks with the voice
it stands for, and one that stands for none is 404 unknown_voice; cloning is 409.
`stream_chunk_size` (a number or a string, as the original took it) is accepted and checked; the
service's own chunking applies. Not in the OpenAPI document: it is this other server's API,
described in docs/clients.md.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Annotated

import anyio
import numpy as np
from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sentiric_tts.doors.http.audio_response import answer_with_audio, collect_unless_gone
from sentiric_tts.doors.http.body_limits import takes_latents
from sentiric_tts.doors.http.deps import client_identity, get_runtime
from sentiric_tts.doors.http.uploads import read_uploads
from sentiric_tts.doors.xtts_streaming import PREFIX
from sentiric_tts.doors.xtts_streaming.voice_vectors import voice_of, voice_vectors
from sentiric_tts.engines.base import Engine, LatentEngine, Voice
from sentiric_tts.failures import Failure, RequestError
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.stream import AudioStream
from sentiric_tts.voices.cloning import require_cloning_engine

DOOR = "xtts_streaming"
OUTPUT_RATE = 24000
"""The original's output rate, which its clients assume without being told."""


class SpeechBody(BaseModel):
    """POST /tts: the original's TTSInputs."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    text: str
    language: str | None = Field(None, description="A language code; none: detected or the default.")
    speaker_embedding: list[float]
    gpt_cond_latent: list[list[float]] | list[float]


class StreamBody(SpeechBody):
    """POST /tts_stream: the original's StreamingInputs."""

    add_wav_header: bool = True
    stream_chunk_size: int | str = "20"

    @field_validator("stream_chunk_size")
    @classmethod
    def _chunk_size(cls, value: int | str) -> int | str:
        try:
            size = int(str(value).strip())
        except ValueError:
            raise ValueError("must be a whole number of tokens, e.g. 20") from None
        if not 1 <= size <= 1000:
            raise ValueError("must be between 1 and 1000")
        return value


def _latent_digest(body: SpeechBody) -> str:
    embedding = np.asarray(body.speaker_embedding, dtype=np.float32).tobytes()
    latent = np.asarray(body.gpt_cond_latent, dtype=np.float32).tobytes()
    return hashlib.sha256(embedding + b"|" + latent).hexdigest()[:12]


def _piper_voice(runtime: Runtime, body: SpeechBody) -> str:
    ids = [info.id for info in runtime.engine.voices()]
    try:
        voice = voice_of(body.speaker_embedding, ids)
    except ValueError as exc:
        raise RequestError(f"{exc}.", param="speaker_embedding", code="invalid_latents") from None
    if voice is None:
        raise RequestError(
            f"This speaker_embedding stands for none of the {runtime.engine.name} engine's voices: "
            f"post one of those {PREFIX}/studio_speakers gives (this engine takes no other speakers).",
            param="speaker_embedding",
            code="unknown_voice",
            kind=Failure.NOT_FOUND,
        )
    return voice


async def _open(runtime: Runtime, client: str, body: SpeechBody, output_format: str) -> AudioStream:
    request = SynthesisRequest(
        text=body.text,
        language=(body.language or "").strip() or None,
        output_format=output_format,
        sample_rate=OUTPUT_RATE,
        ssml=False,
        detect_language=runtime.settings.openai.detect_language,
    )
    engine = runtime.engine
    if not isinstance(engine, LatentEngine):
        request = dataclasses.replace(request, voice=_piper_voice(runtime, body))
        return await runtime.open_speech(request, client, door=DOOR)
    try:
        conditioning = engine.conditioning_from_vectors(body.speaker_embedding, body.gpt_cond_latent)
    except ValueError as exc:
        raise RequestError(
            f"The speaker latents do not fit this model: {exc}.",
            param="gpt_cond_latent",
            code="invalid_latents",
        ) from None
    voice = Voice(id=f"latents-{_latent_digest(body)}", conditioning=conditioning)
    return await runtime.open_speech_as(request, voice, client, door=DOOR)


def _speakers_json(engine: Engine) -> bytes:
    speakers: dict[str, dict[str, object]] = {}
    for info in engine.voices():
        if isinstance(engine, LatentEngine):
            embedding, latent = engine.conditioning_vectors(engine.speaker_conditioning(info.id))
            speakers[info.id] = {"speaker_embedding": embedding, "gpt_cond_latent": latent}
        else:
            stand_in, row = voice_vectors(info.id)
            speakers[info.id] = {"speaker_embedding": list(stand_in), "gpt_cond_latent": [list(row)]}
    return json.dumps(speakers).encode()


def build_router() -> APIRouter:
    """The door's routes, with one app's copy of the /studio_speakers document."""
    router = APIRouter(
        prefix=PREFIX,
        tags=["xtts-streaming-server"],
        include_in_schema=False,
        dependencies=[Depends(client_identity)],
    )
    # Made once per engine (XTTS v2: 58 speakers' latents, ~20 MB of JSON).
    studio: dict[str, bytes] = {}

    @router.get("/studio_speakers")
    async def studio_speakers(runtime: Runtime = Depends(get_runtime)) -> Response:
        engine = runtime.engine
        key = engine.fingerprint()
        if key not in studio:
            studio.clear()
            studio[key] = await anyio.to_thread.run_sync(_speakers_json, engine)
        return Response(studio[key], media_type="application/json")

    @router.get("/languages")
    async def languages(runtime: Runtime = Depends(get_runtime)) -> list[str]:
        return runtime.pipeline.catalogue.languages()

    @router.post("/tts_stream")
    @takes_latents
    async def tts_stream(
        body: StreamBody,
        http: Request,
        runtime: Runtime = Depends(get_runtime),
        client: str = Depends(client_identity),
    ) -> Response:
        audio = await _open(runtime, client, body, "wav" if body.add_wav_header else "pcm")
        return await answer_with_audio(runtime, http, audio, stream=True)

    @router.post("/tts")
    @takes_latents
    async def tts(
        body: SpeechBody,
        http: Request,
        runtime: Runtime = Depends(get_runtime),
        client: str = Depends(client_identity),
    ) -> Response:
        audio = await _open(runtime, client, body, "wav")
        http.state.audio_stream = audio  # for the request's log line
        wav = await collect_unless_gone(http, audio)
        if wav is None:
            return Response(status_code=499)  # nobody is listening
        return JSONResponse(base64.b64encode(wav).decode("ascii"))

    @router.post("/clone_speaker")
    async def clone_speaker(
        wav_file: Annotated[UploadFile, File(description="A reference clip: wav, mp3, ogg, flac, ...")],
        runtime: Runtime = Depends(get_runtime),
        client: str = Depends(client_identity),
    ) -> dict[str, object]:
        engine = require_cloning_engine(runtime.engine, param="wav_file")
        if not isinstance(engine, LatentEngine):  # a cloning engine whose latents are not vectors
            raise RequestError(
                f"The {engine.name} engine's voices cannot be given as vectors.",
                param="wav_file",
                code="cloning_unavailable",
                kind=Failure.CONFLICT,
            )
        clips = await read_uploads([wav_file], runtime.settings.voices.clone_max_file_bytes)
        release = runtime.admit_client(client)  # cloning is engine work, admitted like synthesis
        try:
            voice = await runtime.pipeline.catalogue.clone_voice(clips)
        finally:
            release()
        embedding, latent = engine.conditioning_vectors(voice.conditioning)
        return {"gpt_cond_latent": latent, "speaker_embedding": embedding}

    return router
