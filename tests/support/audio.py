"""Decoding and measuring what the service returns."""

from __future__ import annotations

import io
import re
import struct
import wave

import numpy as np
import soxr


def parse_wav(data: bytes) -> tuple[int, int, np.ndarray]:
    """(sample rate, channels, int16 samples) of a WAV, including streamed ones whose sizes are
    unknown (0xFFFFFFFF): their data runs to the end of the body."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not a RIFF/WAVE file"
    pos = 12
    rate = channels = bits = 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body : body + 16])
            assert fmt == 1 and bits == 16, "expected 16-bit PCM"
        elif chunk_id == b"data":
            end = len(data) if size == 0xFFFFFFFF else body + size
            samples = np.frombuffer(data[body:end][: (end - body) // 2 * 2], dtype="<i2")
            return rate, channels, samples
        pos = body + size + (size & 1)
    raise AssertionError("no data chunk")


def wav_with_stdlib(data: bytes) -> tuple[int, int, int]:
    """(rate, channels, frames) as Python's wave module reads a complete WAV file."""
    with wave.open(io.BytesIO(data)) as reader:
        return reader.getframerate(), reader.getnchannels(), reader.getnframes()


def pcm16(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")


def to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    audio = to_float(samples) if samples.dtype == np.int16 else samples.astype(np.float32)
    return audio if rate == 16000 else soxr.resample(audio, rate, 16000)


_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("-", " "))


def word_error_rate(reference: str, hypothesis: str, language: str = "en") -> float:
    """WER over words, with digits read out on both sides ("9" and "nine" are the same word)."""
    from sentiric_tts.synthesis.normalize import normalize_text

    ref, hyp = words(normalize_text(reference, language)), words(normalize_text(hypothesis, language))
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1] / max(len(ref), 1)


def encode_with_av(
    samples: np.ndarray, rate: int, container: str, codec: str, out_rate: int | None = None
) -> bytes:
    """Encode float mono audio into a container with PyAV (test fixtures: reference clips)."""
    import av

    out_rate = out_rate or rate
    audio = samples.astype(np.float32)
    if out_rate != rate:
        audio = soxr.resample(audio, rate, out_rate)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=out_rate, layout="mono")
        frame_size = 960 if codec == "libopus" else 1024
        for start in range(0, len(audio), frame_size):
            piece = audio[start : start + frame_size]
            fmt = stream.codec_context.format.name if stream.codec_context.format else "s16"
            if fmt.startswith("s16"):
                data = np.rint(np.clip(piece, -1, 1) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(data[None, :], format="s16", layout="mono")
            else:
                frame = av.AudioFrame.from_ndarray(piece[None, :], format="flt", layout="mono")
            frame.sample_rate = out_rate
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def median_f0(x: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 500.0, voicing: float = 0.0) -> float:
    """Median of per-frame autocorrelation F0 estimates, with parabolic peak interpolation.

    Frames whose normalised autocorrelation peak is below `voicing` (unvoiced speech) are skipped.
    """
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    lo, hi = int(sr / fmax), int(sr / fmin)
    estimates = []
    for start in range(0, len(x) - frame, hop):
        seg = x[start : start + frame].astype(np.float64)
        seg -= seg.mean()
        if np.sqrt(np.mean(seg**2)) < 1e-3:
            continue
        ac = np.correlate(seg, seg, "full")[frame - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] < voicing * ac[0]:
            continue
        a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom else 0.0
        estimates.append(sr / (lag + shift))
    return float(np.median(estimates))


def silent_runs(x: np.ndarray, sr: int, threshold: float = 1e-3) -> list[float]:
    """Durations in seconds of the runs of near-silent samples strictly inside the signal."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    if loud.size < 2:
        return []
    gaps = np.diff(loud) - 1
    return [g / sr for g in gaps[gaps > 0]]


def speech_span(x: np.ndarray, sr: int, threshold: float = 1e-3) -> float:
    """Seconds from the first to the last non-silent sample."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    return 0.0 if loud.size < 2 else (loud[-1] - loud[0]) / sr
