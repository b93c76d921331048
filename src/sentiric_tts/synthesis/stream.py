"""One response's audio after the engine: prosody, joins, loudness, resampling, encoding.

  engine chunks -> per segment: pitch shift, gain (SSML prosody) -> SegmentJoiner (trim, fades,
  pauses) -> loudness (whole: measured over the whole signal; stream: gain from the first
  sentence, held, plus a true-peak limiter) -> stateful resampler -> int16 -> encoder

Streamed and whole output go through the same chain and have the same length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from sentiric_tts.audio.encoders import make_encoder
from sentiric_tts.audio.joins import SegmentJoiner
from sentiric_tts.audio.limiter import TruePeakLimiter
from sentiric_tts.audio.loudness import StreamLoudness, integrated_loudness, normalize_whole
from sentiric_tts.audio.pcm import float_to_int16
from sentiric_tts.audio.pitch import PitchShifter
from sentiric_tts.audio.resample import StreamResampler
from sentiric_tts.audio.voice_levels import VoiceLevels
from sentiric_tts.failures import DeadlineExceeded, SynthesisFailed
from sentiric_tts.synthesis.render import BUDGET_SPENT, SEGMENT_END, AudioLimitReached, SegmentStart
from sentiric_tts.synthesis.request import Mark, Pause, Prosody, Segment, SynthesisPlan
from sentiric_tts.synthesis.scheduler import JobHandle

SILENT_DB = -120.0  # at or below this, a segment is muted (SSML volume="silent")
MAX_PITCH_SEMITONES = 24.0
_LEVEL_SAMPLE_S = 10.0  # pre-gain audio kept to refine the voice's level estimate
_LEVEL_MIN_S = 2.0  # shorter renders say too little about a voice's level
_WHOLE_BLOCK_S = 1.0  # a whole file is resampled and encoded this much at a time


@dataclass(frozen=True)
class PostProcessing:
    normalize_loudness: bool
    target_lufs: float
    true_peak_dbtp: float
    sentence_pause_ms: float
    crossfade_ms: float


@dataclass
class StreamStats:
    """What a finished (or aborted) stream produced, for logs and metrics."""

    started_at: float
    first_audio_at: float | None = None
    finished_at: float | None = None
    output_samples: int = 0

    @property
    def time_to_first_audio_s(self) -> float | None:
        return None if self.first_audio_at is None else self.first_audio_at - self.started_at


class _FixedGain:
    """The loudness stage when normalisation is off: the request's gain, then the limiter."""

    def __init__(self, rate: int, gain_db: float, ceiling_dbtp: float) -> None:
        self._gain = np.float32(10.0 ** (gain_db / 20.0))
        self._limiter = TruePeakLimiter(rate, ceiling_dbtp)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        return self._limiter.process(chunk * self._gain)

    def segment_done(self) -> np.ndarray:
        return np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        return self._limiter.flush()


class _SegmentVoice:
    """Per-segment prosody after synthesis: duration-keeping pitch shift and gain."""

    def __init__(self, rate: int, semitones: float, volume_db: float) -> None:
        semitones = max(-MAX_PITCH_SEMITONES, min(MAX_PITCH_SEMITONES, semitones))
        self.muted = volume_db <= SILENT_DB
        self._shifter = PitchShifter(rate, semitones) if semitones and not self.muted else None
        self._gain = np.float32(0.0 if self.muted else 10.0 ** (volume_db / 20.0))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        if self._shifter is not None:
            chunk = self._shifter.process(chunk)
        return chunk * self._gain if self._gain != 1.0 else chunk

    def flush(self) -> np.ndarray:
        if self._shifter is None:
            return np.zeros(0, np.float32)
        return self._shifter.flush() * self._gain


def _gap_before(
    segment: Segment, breaks: float | None, after_segment: bool, sentence_pause_s: float
) -> float:
    """Seconds of silence before a segment: the breaks there, else (after another segment) its
    own pause, else the sentence pause."""
    if breaks is not None:
        return breaks
    if not after_segment:
        return 0.0
    return sentence_pause_s if segment.pause_before_s is None else segment.pause_before_s


class AudioStream:
    """One response's audio: encoded bytes as they are made, or collected into one file."""

    def __init__(
        self,
        plan: SynthesisPlan,
        job: JobHandle,
        post: PostProcessing,
        levels: VoiceLevels,
        deadline_s: float | None = None,
    ) -> None:
        self.plan = plan
        self._job = job
        self._deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self.outcome = "pending"
        """ok, failed (engine error), deadline, refused (ran past the audio limit), or cancelled
        (the consumer stopped early)."""
        self._done_callbacks: list[Callable[[AudioStream], None]] = []
        self._post = post
        self._levels = levels
        # Only plain renders (no SSML volume or pitch) tell what the voice itself sounds like.
        self._teaches_level = all(
            item.prosody == Prosody() for item in plan.items if isinstance(item, Segment)
        )
        self._rate = plan.engine_rate
        self._encoder = make_encoder(plan.output_format, plan.sample_rate)
        self.content_type = self._encoder.content_type
        self.file_extension = self._encoder.file_extension
        self.stats = StreamStats(started_at=time.perf_counter())
        self.marks: list[tuple[str, float]] = []
        """(mark name, offset in seconds of output audio) in the order they were reached."""

    # --- lifecycle ---

    def add_done_callback(self, callback: Callable[[AudioStream], None]) -> None:
        """Called once when the stream ends, however it ends (metrics, releasing client slots)."""
        self._done_callbacks.append(callback)

    def _finish(self, outcome: str) -> None:
        if self.outcome != "pending":
            return
        self.outcome = outcome
        self.stats.finished_at = time.perf_counter()
        callbacks, self._done_callbacks = self._done_callbacks, []
        for callback in callbacks:
            callback(self)

    async def _tracked(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for part in body:
                yield part
        except AudioLimitReached:
            self._finish("refused")
            raise
        except SynthesisFailed:
            self._finish("failed")
            raise
        except DeadlineExceeded:
            self._finish("deadline")
            raise
        finally:
            # Leaving without an outcome: the consumer stopped reading (client gone).
            self._finish("cancelled")
            self._job.cancel()

    async def _next_item(self) -> object:
        """The job's next item, within the request's deadline; StopAsyncIteration at the end."""
        if self._deadline is None:
            return await self._job.__anext__()
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the
            # item does, so a client's cancel or disconnect could be lost (and a WebSocket
            # session wait for ever). asyncio.timeout never does.
            async with asyncio.timeout(remaining):
                return await self._job.__anext__()
        except TimeoutError:
            self._job.cancel()
            raise DeadlineExceeded() from None

    # --- stage 1: segments joined into one signal at the engine rate ---

    async def _joined(self) -> AsyncIterator[tuple[np.ndarray, bool]]:
        """(audio, first segment just ended) pieces; cancelling the iteration stops the engine.

        Muted text is silence exactly as long as the same text spoken: its own length and the
        pauses before and after it, as `planned_pause_seconds` counts them."""
        rate = self._rate
        sentence_pause_s = self._post.sentence_pause_ms / 1000.0
        joiner = SegmentJoiner(rate, self._post.crossfade_ms, self._post.sentence_pause_ms, keep_ms=5.0)
        emitted = 0
        breaks: float | None = None  # explicit silence (SSML breaks) since the last segment
        owed = 0.0  # seconds of muted text, with the pauses before it, not yet emitted
        segment: _SegmentVoice | None = None
        muted_samples = 0
        segments_started = 0
        segments_done = 0
        try:
            while True:
                try:
                    item = await self._next_item()
                except StopAsyncIteration:
                    break
                out = np.zeros(0, np.float32)
                first_done = False
                if isinstance(item, np.ndarray):
                    assert segment is not None
                    if segment.muted:
                        muted_samples += item.size
                    else:
                        out = joiner.process(segment.process(item))
                elif isinstance(item, SegmentStart):
                    prosody = item.segment.prosody
                    segment = _SegmentVoice(rate, prosody.pitch_semitones, prosody.volume_db)
                    muted_samples = 0
                    gap = _gap_before(item.segment, breaks, segments_started > 0, sentence_pause_s)
                    breaks = None
                    segments_started += 1
                    if segment.muted:
                        owed += gap
                    elif not joiner.boundaries:
                        # Silence before the first spoken segment: the joiner never pauses there.
                        out = np.concatenate(
                            [np.zeros(round((owed + gap) * rate), np.float32), joiner.begin_segment()]
                        )
                        owed = 0.0
                    else:
                        out = joiner.begin_segment((owed + gap) * 1000.0)
                        owed = 0.0
                elif item is SEGMENT_END:
                    assert segment is not None
                    if segment.muted:
                        owed += muted_samples / rate
                    else:
                        out = np.concatenate([joiner.process(segment.flush()), joiner.end_segment()])
                    segments_done += 1
                    first_done = segments_done == 1
                    segment = None
                elif isinstance(item, Pause):
                    breaks = (breaks or 0.0) + item.seconds
                elif isinstance(item, Mark):
                    # After the silence still to come before the next segment (a break, muted text).
                    waiting = round((owed + (breaks or 0.0)) * rate)
                    self.marks.append((item.name, (emitted + waiting) / rate))
                elif item is BUDGET_SPENT:
                    raise AudioLimitReached(self.plan.max_audio_seconds or 0.0)
                emitted += out.size
                if out.size or first_done:
                    yield out, first_done
            out = joiner.flush()
            tail_s = owed + (breaks or 0.0)
            if tail_s:
                out = np.concatenate([out, np.zeros(round(tail_s * rate), np.float32)])
            yield out, False
        finally:
            self._job.cancel()

    # --- stage 2: level, rate, encoding ---

    def _encode(self, audio: np.ndarray) -> bytes:
        if not audio.size:
            return b""
        if self.stats.first_audio_at is None:
            self.stats.first_audio_at = time.perf_counter()
        self.stats.output_samples += audio.size
        return self._encoder.encode(float_to_int16(audio))

    def chunks(self) -> AsyncIterator[bytes]:
        """Encoded bytes, header first. Leaving early cancels the engine work."""
        return self._tracked(self._chunks())

    async def _chunks(self) -> AsyncIterator[bytes]:
        post = self._post
        level: StreamLoudness | _FixedGain = (
            StreamLoudness(
                self._rate,
                post.target_lufs,
                post.true_peak_dbtp,
                self.plan.volume_gain_db,
                known_lufs=self._levels.get(self.plan.voice_id),
            )
            if post.normalize_loudness
            else _FixedGain(self._rate, self.plan.volume_gain_db, post.true_peak_dbtp)
        )
        resampler = StreamResampler(self._rate, self.plan.sample_rate)
        header = self._encoder.header()
        if header:
            yield header
        sample: list[np.ndarray] = []
        sampled = 0
        async for audio, first_segment_done in self._joined():
            if sampled < _LEVEL_SAMPLE_S * self._rate:
                sample.append(audio)
                sampled += audio.size
            leveled = level.process(audio)
            if first_segment_done:
                leveled = np.concatenate([leveled, level.segment_done()])
            data = self._encode(resampler.process(leveled))
            if data:
                yield data
        tail = resampler.process(level.flush())
        tail = self._encode(np.concatenate([tail, resampler.flush()])) + self._encoder.finish()
        if tail:
            yield tail
        self._finish("ok")
        if sample:
            self._learn_level(np.concatenate(sample))

    def _learn_level(self, audio: np.ndarray, measured_lufs: float | None = None) -> None:
        if self._teaches_level and audio.size >= _LEVEL_MIN_S * self._rate:
            lufs = integrated_loudness(audio, self._rate) if measured_lufs is None else measured_lufs
            self._levels.update(self.plan.voice_id, lufs)

    async def collect(self) -> bytes:
        """The whole response as one file: loudness measured over all of it, exact header."""
        parts = [part async for part in self._tracked(self._collect())]
        return parts[0]

    async def _collect(self) -> AsyncIterator[bytes]:
        # Memory: the signal at the engine rate is the one whole copy kept (loudness is measured
        # over all of it); what follows is made and encoded a block at a time.
        pieces = [audio async for audio, _ in self._joined()]
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        pieces.clear()
        post = self._post
        if post.normalize_loudness and audio.size:
            measured = integrated_loudness(audio, self._rate)
            self._learn_level(audio, measured)
            audio = normalize_whole(
                audio, self._rate, post.target_lufs + self.plan.volume_gain_db, post.true_peak_dbtp, measured
            )
        else:
            fixed = _FixedGain(self._rate, self.plan.volume_gain_db, post.true_peak_dbtp)
            audio = np.concatenate([fixed.process(audio), fixed.flush()])
        resampler = StreamResampler(self._rate, self.plan.sample_rate)
        block = round(_WHOLE_BLOCK_S * self._rate)
        parts = [self._encoder.header()]
        parts.extend(
            self._encode(resampler.process(audio[i : i + block])) for i in range(0, audio.size, block)
        )
        del audio
        parts += [self._encode(resampler.flush()), self._encoder.finish()]
        body = b"".join(parts)
        parts.clear()
        self._finish("ok")
        yield self._encoder.finalize(body)

    def cancel(self) -> None:
        self._job.cancel()
        self._finish("cancelled")

    @property
    def audio_seconds(self) -> float:
        return self.stats.output_samples / self.plan.sample_rate
