"""Reference clips for voice cloning: decoded by us (PyAV, through `safe_decode`), checked, made
canonical.

Decoding here rather than through torchaudio keeps FFmpeg inside PyAV's wheel (torchaudio.load
would need torchcodec's system FFmpeg). Every clip ends up mono float32 at REFERENCE_RATE with
leading and trailing silence trimmed, so the same recording always hashes to the same cache key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from sentiric_tts.audio.resample import resample
from sentiric_tts.audio.safe_decode import ACCEPTED_FORMATS, AudioTooLong, UndecodableAudio, decode_upload
from sentiric_tts.failures import Failure, RequestError

REFERENCE_RATE = 22050
_FRAME_S = 0.02
# A frame counts as speech when it is within this many dB of the clip's loudest frames; an
# absolute floor keeps near-silent recordings from counting as speech.
_SPEECH_BELOW_PEAK_DB = 35.0
_SPEECH_FLOOR_DBFS = -55.0


@dataclass(frozen=True)
class ReferenceLimits:
    max_files: int
    max_file_bytes: int
    max_seconds: float
    min_speech_seconds: float


@dataclass(frozen=True)
class ReferenceAudio:
    clips: tuple[np.ndarray, ...]
    sample_rate: int
    digest: str
    """SHA-256 over the canonical samples of every clip, in order."""

    @property
    def seconds(self) -> float:
        return sum(len(clip) for clip in self.clips) / self.sample_rate


def _too_long(name: str, exc: AudioTooLong, limit: float) -> RequestError:
    length = f"{exc.seconds:.1f} s long" if exc.complete else f"more than {limit:g} s long"
    return RequestError(
        f"Reference '{name}' is {length}; the limit is {limit:g} s. Cut it to the clearest stretch of speech.",
        param="files",
        code="reference_too_long",
    )


def _decode(data: bytes, name: str, max_seconds: float) -> tuple[np.ndarray, int]:
    try:
        decoded = decode_upload(data, max_seconds)
    except AudioTooLong as exc:
        raise _too_long(name, exc, max_seconds) from exc
    except UndecodableAudio as exc:
        raise RequestError(
            f"Reference '{name}' is not audio we can decode: {exc}. Accepted formats: {ACCEPTED_FORMATS}.",
            param="files",
            code="invalid_audio",
        ) from exc
    return decoded.samples, decoded.sample_rate


def _frame_levels_db(audio: np.ndarray, rate: int) -> np.ndarray:
    frame = max(1, int(rate * _FRAME_S))
    usable = len(audio) // frame * frame
    if usable == 0:
        return np.zeros(0)
    frames = audio[:usable].reshape(-1, frame)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9))


def speech_seconds(audio: np.ndarray, rate: int) -> float:
    levels = _frame_levels_db(audio, rate)
    if not levels.size:
        return 0.0
    threshold = max(np.percentile(levels, 95) - _SPEECH_BELOW_PEAK_DB, _SPEECH_FLOOR_DBFS)
    return float(np.count_nonzero(levels > threshold)) * _FRAME_S


def trim_silence(audio: np.ndarray, rate: int, keep_s: float = 0.1) -> np.ndarray:
    levels = _frame_levels_db(audio, rate)
    if not levels.size:
        return audio
    threshold = max(np.percentile(levels, 95) - _SPEECH_BELOW_PEAK_DB, _SPEECH_FLOOR_DBFS)
    active = np.flatnonzero(levels > threshold)
    if not active.size:
        return audio
    frame = int(rate * _FRAME_S)
    keep = int(rate * keep_s)
    start = max(0, active[0] * frame - keep)
    end = min(len(audio), (active[-1] + 1) * frame + keep)
    return audio[start:end]


def load_references(files: list[tuple[str, bytes]], limits: ReferenceLimits) -> ReferenceAudio:
    """Decode, check and canonicalise reference clips; RequestError says what is wrong."""
    if not files:
        raise RequestError(
            "Send at least one reference clip (a few seconds of clear speech).",
            param="files",
            code="missing_reference",
        )
    if len(files) > limits.max_files:
        raise RequestError(
            f"Too many reference clips: {len(files)}; at most {limits.max_files}.",
            param="files",
            code="too_many_references",
        )
    clips: list[np.ndarray] = []
    digest = hashlib.sha256()
    for name, data in files:
        if len(data) > limits.max_file_bytes:
            raise RequestError(
                f"Reference '{name}' is {len(data)} bytes; the limit is {limits.max_file_bytes}.",
                param="files",
                code="reference_too_large",
                kind=Failure.TOO_LARGE,
            )
        if not data:
            raise RequestError(f"Reference '{name}' is empty.", param="files", code="invalid_audio")
        audio, rate = _decode(data, name, limits.max_seconds)
        audio = resample(audio, rate, REFERENCE_RATE)
        spoken = speech_seconds(audio, REFERENCE_RATE)
        if spoken < limits.min_speech_seconds:
            raise RequestError(
                f"Reference '{name}' has {spoken:.1f} s of speech; at least "
                f"{limits.min_speech_seconds:g} s is needed (3-10 s of clear speech clones best).",
                param="files",
                code="reference_too_short",
            )
        clip = np.clip(trim_silence(audio, REFERENCE_RATE), -1.0, 1.0).astype(np.float32)
        digest.update(len(clip).to_bytes(8, "little"))
        digest.update(np.rint(clip * 32767).astype("<i2").tobytes())
        clips.append(clip)
    return ReferenceAudio(clips=tuple(clips), sample_rate=REFERENCE_RATE, digest=digest.hexdigest())
