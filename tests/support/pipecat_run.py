"""Drive a pipecat TTS service with pipecat's own test harness and collect what it says."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import numpy as np
from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.services.tts_service import TTSService
from pipecat.tests.utils import run_test


def pipecat_speech(make: Callable[[aiohttp.ClientSession], TTSService], text: str) -> tuple[np.ndarray, int]:
    """(int16 samples, rate) the service pushes downstream for one TTSSpeakFrame; the test fails
    on any ErrorFrame, downstream or upstream."""

    async def run() -> tuple[np.ndarray, int]:
        async with aiohttp.ClientSession() as session:
            down, up = await run_test(make(session), frames_to_send=[TTSSpeakFrame(text)])
        errors = [frame.error for frame in (*down, *up) if isinstance(frame, ErrorFrame)]
        assert not errors, errors
        audio = [frame for frame in down if isinstance(frame, TTSAudioRawFrame)]
        assert audio, [type(frame).__name__ for frame in down]
        assert {frame.num_channels for frame in audio} == {1}
        rates = {frame.sample_rate for frame in audio}
        assert len(rates) == 1, rates
        return np.frombuffer(b"".join(frame.audio for frame in audio), dtype="<i2"), rates.pop()

    return asyncio.run(run())
