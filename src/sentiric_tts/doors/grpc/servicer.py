"""sentiric.tts.v1.TtsCoquiService on the shared runtime: the same admission, pipeline and
scheduler as the HTTP API (Runtime.open_speech), only the wire format differs."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import grpc

from sentiric_tts.callers import key_from_headers
from sentiric_tts.doors.admission import admit
from sentiric_tts.doors.grpc.calls import CallRecord, metadata_of, peer_host, serving, write
from sentiric_tts.doors.grpc.contract import pb, pb_grpc
from sentiric_tts.doors.grpc.mapping import SynthesizeMessage, to_synthesis_request
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.stream import AudioStream

Context = grpc.aio.ServicerContext[Any, Any]


class TtsCoquiServicer(pb_grpc.TtsCoquiServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def _open(self, message: SynthesizeMessage, context: Context, call: CallRecord) -> AudioStream:
        runtime = self._runtime
        metadata = metadata_of(context)
        caller = admit(
            runtime,
            key_from_headers(metadata.get("authorization"), metadata.get("x-api-key")),
            peer_host(context.peer()),
            "grpc",
        )
        request = to_synthesis_request(message)
        # A shutdown that closed admission meanwhile raises ShuttingDown: UNAVAILABLE too.
        call.audio = await runtime.open_speech(request, caller.client, door=caller.door)
        return call.audio

    async def CoquiSynthesize(
        self, request: pb.CoquiSynthesizeRequest, context: Context
    ) -> pb.CoquiSynthesizeResponse:
        """The whole file: the same bytes as a non-streamed HTTP response."""
        async with serving("CoquiSynthesize", context, self._runtime.metrics) as call:
            audio = await self._open(request, context, call)
            return pb.CoquiSynthesizeResponse(audio_content=await audio.collect())
        # Reached only when the caller left before the audio was done: nobody reads this.
        return pb.CoquiSynthesizeResponse()

    async def CoquiSynthesizeStream(self, request: pb.CoquiSynthesizeStreamRequest, context: Context) -> None:
        """Chunks as they are made, then an empty one with is_final; a failure ends the call with
        an error status, never with a final message."""
        async with serving("CoquiSynthesizeStream", context, self._runtime.metrics) as call:
            audio = await self._open(request, context, call)
            async with aclosing(audio.chunks()) as chunks:
                async for part in chunks:
                    await write(context, pb.CoquiSynthesizeStreamResponse(audio_chunk=part))
            await write(context, pb.CoquiSynthesizeStreamResponse(is_final=True))
