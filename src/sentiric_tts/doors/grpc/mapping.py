"""A CoquiSynthesize(Stream)Request turned into the door-independent SynthesisRequest.

Proto3 scalars cannot be absent, so 0 (or "") means "the default" for every tuning field, as the
platform's contract says. Anything else out of range is refused with the range to use; the text,
language, voice, format and rate are checked by the pipeline, as for every door.
"""

from __future__ import annotations

import math

from sentiric_tts.doors.grpc.contract import pb
from sentiric_tts.engines.base import GenerationParams
from sentiric_tts.failures import RequestError
from sentiric_tts.synthesis.request import SynthesisRequest

DEFAULT_OUTPUT_FORMAT = "wav"
"""With no output_format: a WAV says its own rate and format; telephony callers ask for pcm."""
SPEAKER_WAV_NAME = "speaker_wav"

# (lowest, highest, lowest is allowed): the same ranges as the HTTP API's fields.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "speed": (0.25, 4.0, True),
    "temperature": (0.0, 2.0, False),
    "top_p": (0.0, 1.0, False),
    "top_k": (1.0, 1000.0, True),
    "repetition_penalty": (1.0, 50.0, True),
}

SynthesizeMessage = pb.CoquiSynthesizeRequest | pb.CoquiSynthesizeStreamRequest


def _tuning(message: SynthesizeMessage, name: str) -> float | None:
    """The field's value, None for 0 (the default); RequestError when out of range."""
    value = float(getattr(message, name))
    if value == 0.0:
        return None
    low, high, low_ok = _RANGES[name]
    if not math.isfinite(value) or value > high or value < low or (value == low and not low_ok):
        bracket = "[" if low_ok else "("
        raise RequestError(
            f"{name} must be in {bracket}{low:g}, {high:g}] (0 means the default); got {value:g}.",
            param=name,
            code="invalid_parameter",
        )
    return value


def to_synthesis_request(message: SynthesizeMessage) -> SynthesisRequest:
    top_k = _tuning(message, "top_k")
    speed = _tuning(message, "speed")
    references: tuple[tuple[str, bytes], ...] = ()
    # An empty speaker_wav is taken as "no clip": some clients set optional bytes to b"" for none.
    if message.HasField("speaker_wav") and message.speaker_wav:
        references = ((SPEAKER_WAV_NAME, message.speaker_wav),)
    return SynthesisRequest(
        text=message.text,
        language=message.language_code.strip() or None,
        voice=(message.voice.strip() or None) if message.HasField("voice") else None,
        params=GenerationParams(
            speed=1.0 if speed is None else speed,
            temperature=_tuning(message, "temperature"),
            top_k=None if top_k is None else round(top_k),
            top_p=_tuning(message, "top_p"),
            repetition_penalty=_tuning(message, "repetition_penalty"),
        ),
        output_format=message.output_format.strip() or DEFAULT_OUTPUT_FORMAT,
        sample_rate=message.sample_rate or None,
        references=references,
        ssml=message.ssml if message.HasField("ssml") else None,
    )
