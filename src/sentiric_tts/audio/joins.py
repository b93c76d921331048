"""Click-free joins between engine segments: silence trimming, fades and sentence pauses.

Engines render each sentence separately; butting them together leaves a step wherever one ends or
the next begins off zero (an audible click) and pauses of whatever length the model happened to
produce. `SegmentJoiner` trims each segment's edge silence, fades the edges with a raised-cosine
curve (a step in the gain is itself a click) and puts a fixed pause between segments.
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD_DB = -50.0  # below this a sample counts as silence
DEFAULT_KEEP_MS = 20.0  # silence kept at a trimmed edge, so a consonant's breath is not cut
DEFAULT_CROSSFADE_MS = 10.0
DEFAULT_PAUSE_MS = 200.0


def _threshold(threshold_db: float) -> float:
    return float(10.0 ** (threshold_db / 20.0))


def _fade_curve(length: int) -> np.ndarray:
    """Raised-cosine rise from ~0 to ~1 over `length` samples (no step at either end)."""
    return (np.sin(0.5 * np.pi * (np.arange(length) + 0.5) / max(length, 1)) ** 2).astype(np.float32)


def trim_silence(
    audio: np.ndarray, rate: int, threshold_db: float = DEFAULT_THRESHOLD_DB, keep_ms: float = DEFAULT_KEEP_MS
) -> np.ndarray:
    """Drop leading and trailing silence, keeping `keep_ms` of it at each edge."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    loud = np.nonzero(np.abs(x) > _threshold(threshold_db))[0]
    if not loud.size:
        return x[:0]
    keep = round(keep_ms * rate / 1000.0)
    return x[max(0, loud[0] - keep) : loud[-1] + 1 + keep]


def fade(audio: np.ndarray, rate: int, fade_in_ms: float = 0.0, fade_out_ms: float = 0.0) -> np.ndarray:
    """A copy with raised-cosine fade-in/out (each at most the signal's length)."""
    x = np.array(audio, dtype=np.float32).reshape(-1)
    n_in = min(x.size, round(fade_in_ms * rate / 1000.0))
    n_out = min(x.size, round(fade_out_ms * rate / 1000.0))
    if n_in:
        x[:n_in] *= _fade_curve(n_in)
    if n_out:
        x[x.size - n_out :] *= _fade_curve(n_out)[::-1]
    return x


def boundary_jumps(audio: np.ndarray, boundaries: list[int], radius: int) -> tuple[float, float]:
    """(largest |x[i+1]-x[i]| within `radius` of any boundary, largest everywhere else)."""
    jumps = np.abs(np.diff(np.asarray(audio, dtype=np.float64).reshape(-1)))
    near = np.zeros(jumps.size, dtype=bool)
    for b in boundaries:
        near[max(0, b - radius) : max(0, min(jumps.size, b + radius))] = True
    at = float(jumps[near].max()) if near.any() else 0.0
    inside = float(jumps[~near].max()) if (~near).any() else 0.0
    return at, inside


class SegmentJoiner:
    """Stateful joiner fed segment by segment: begin_segment, process*, end_segment, ..., flush.

    Every segment gets a fade-in and fade-out of `crossfade_ms` and `pause_ms` of silence goes
    between segments (never before the first or after the last). Leading silence of the first
    segment and trailing silence of the last are trimmed; with `trim_inner` (default) every
    segment's edges are, so the pause is exactly `pause_ms` plus at most 2 x `keep_ms`.

    Audio is held back only as long as needed: the last `crossfade_ms` of a segment (its fade-out
    is decided at its end) and any run of silence that might turn out to be trailing.
    `boundaries` lists the output sample index where each segment's audio starts.
    """

    def __init__(
        self,
        rate: int,
        crossfade_ms: float = DEFAULT_CROSSFADE_MS,
        pause_ms: float = DEFAULT_PAUSE_MS,
        *,
        threshold_db: float = DEFAULT_THRESHOLD_DB,
        keep_ms: float = DEFAULT_KEEP_MS,
        trim_inner: bool = True,
    ) -> None:
        self.rate = rate
        self._fade = max(1, round(crossfade_ms * rate / 1000.0))
        self._curve = _fade_curve(self._fade)
        self._pause = round(pause_ms * rate / 1000.0)
        self._next_pause = self._pause
        self._threshold = _threshold(threshold_db)
        self._keep = round(keep_ms * rate / 1000.0)
        self._trim_inner = trim_inner
        self.boundaries: list[int] = []
        self._emitted = 0  # output samples so far
        self._segments_out = 0  # segments that produced audio
        self._in_segment = False
        self._leading = True  # still looking for the segment's first loud sample
        self._faded_in = 0  # samples of the current segment released so far
        self._pre_roll = 0  # quiet samples before the segment's first loud one
        self._held = np.zeros(0, np.float32)  # current segment's audio not yet released
        self._deferred = np.zeros(0, np.float32)  # finished segment's silent tail (trim_inner off)

    # --- output bookkeeping ---

    def _emit(self, audio: np.ndarray) -> np.ndarray:
        """Release current-segment audio: fade-in and, before a segment's first sample, the pause."""
        if not audio.size:
            return audio
        parts = []
        if self._faded_in == 0:
            if self._deferred.size:
                parts.append(self._deferred)
                self._deferred = np.zeros(0, np.float32)
            if self._segments_out:
                parts.append(np.zeros(self._next_pause, np.float32))
            self.boundaries.append(self._emitted + sum(p.size for p in parts))
            self._segments_out += 1
        # The fade-in starts at the first loud sample: the quiet pre-roll before it keeps its level.
        positions = np.arange(self._faded_in, self._faded_in + audio.size) - self._pre_roll
        ramp = (positions >= 0) & (positions < self._fade)
        if ramp.any():
            audio = audio.copy()
            audio[ramp] *= self._curve[positions[ramp]]
        self._faded_in += audio.size
        parts.append(audio)
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._emitted += out.size
        return out

    def _may_trim_leading(self) -> bool:
        return self._trim_inner or (self._segments_out == 0 and not self._deferred.size)

    def _last_loud(self, audio: np.ndarray) -> int:
        loud = np.nonzero(np.abs(audio) > self._threshold)[0]
        return int(loud[-1]) if loud.size else -1

    # --- segment protocol ---

    def begin_segment(self, pause_ms: float | None = None) -> np.ndarray:
        """Start a segment; `pause_ms` replaces the default pause before it (an SSML break)."""
        out = self.end_segment() if self._in_segment else np.zeros(0, np.float32)
        self._next_pause = self._pause if pause_ms is None else round(pause_ms * self.rate / 1000.0)
        self._in_segment = True
        self._leading = True
        self._faded_in = 0
        self._pre_roll = 0
        self._held = np.zeros(0, np.float32)
        return out

    def process(self, chunk: np.ndarray) -> np.ndarray:
        if not self._in_segment:
            self.begin_segment()
        held = np.concatenate([self._held, np.asarray(chunk, dtype=np.float32).reshape(-1)])
        if self._leading:
            loud = np.nonzero(np.abs(held) > self._threshold)[0]
            if not loud.size:
                if self._may_trim_leading():
                    held = held[max(0, held.size - self._keep) :]  # silence so far: keep a little
                self._held = held
                return np.zeros(0, np.float32)
            start = max(0, loud[0] - self._keep) if self._may_trim_leading() else 0
            held = held[start:]
            self._pre_roll = int(loud[0] - start)
            self._leading = False
        # Hold the fade-out length and any trailing silent run (it may be the segment's end).
        release = max(0, self._last_loud(held) + 1 - self._fade)
        self._held = held[release:]
        return self._emit(held[:release])

    def end_segment(self) -> np.ndarray:
        if not self._in_segment:
            return np.zeros(0, np.float32)
        self._in_segment = False
        held = self._held
        self._held = np.zeros(0, np.float32)
        if self._leading:
            # Nothing loud in the whole segment: it contributes nothing when trimming, and its
            # (quiet) audio as it is otherwise.
            return self._emit(held) if not self._may_trim_leading() else np.zeros(0, np.float32)
        last = self._last_loud(held)
        cut = last + 1 + self._keep
        held, tail = held[:cut].copy(), held[cut:]
        # Fade out over the samples up to the last loud one; the quiet kept tail stays as it is.
        n = min(last + 1, self._fade)
        if n > 0:
            held[last + 1 - n : last + 1] *= self._curve[::-1][self._fade - n :]
        out = self._emit(held)
        if not self._trim_inner:
            # Only the last segment's trailing silence goes; which one is last we learn at flush.
            self._deferred = tail
        return out

    def flush(self) -> np.ndarray:
        """End the stream: finish the open segment and drop the last segment's trailing silence."""
        out = self.end_segment()
        self._deferred = np.zeros(0, np.float32)
        return out


def join_segments(segments: list[np.ndarray], joiner: SegmentJoiner) -> np.ndarray:
    """Run whole segments through a joiner (tests, CLI and whole-file helpers)."""
    parts = []
    for segment in segments:
        parts.append(joiner.begin_segment())
        parts.append(joiner.process(segment))
        parts.append(joiner.end_segment())
    parts.append(joiner.flush())
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
