"""Duration-keeping pitch shift for speech: WSOLA time-stretch followed by resampling.

Speech engines have no pitch control, so SSML `<prosody pitch>` is applied here after synthesis.
Method: stretch the signal by `a = 2**(semitones/12)` with WSOLA (waveform-similarity overlap-add,
which keeps pitch periods intact and so avoids the "phasiness" of a phase vocoder on speech),
then play it back `a` times faster by resampling with soxr. Duration returns to the original and
every frequency, the fundamental included, is multiplied by `a`. Formants move with the pitch, as
with any plain shifter; for the few semitones SSML asks for, speech stays natural and intelligible.

Why not pedalboard's Rubber Band `PitchShift`: in streaming mode it holds back about 1.1 s of
audio before emitting anything, far too much for a streaming TTS service. This shifter's latency
is one WSOLA frame plus the search window and soxr's filter delay (about 50 ms), and it runs on
any CPU with numpy and soxr, both already dependencies.

The shifter is stateful: chunks may have any size and boundaries leave no trace, and the total of
`process()` outputs plus `flush()` is exactly as long as the total input.
"""

from __future__ import annotations

import math

import numpy as np
import soxr

MAX_SEMITONES = 24.0
"""Beyond two octaves speech is unintelligible anyway; larger requests are a caller's bug."""
_FRAME_S = 0.030  # WSOLA frame: several pitch periods even for low voices (70 Hz -> 14 ms)
_TOLERANCE_S = 0.0075  # search +-7.5 ms: at least half the longest pitch period we expect


class PitchShifter:
    """Shifts the pitch of a float32 mono stream by `semitones`, keeping its duration."""

    def __init__(self, sample_rate: int, semitones: float) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if not math.isfinite(semitones) or abs(semitones) > MAX_SEMITONES:
            raise ValueError(f"semitones must be within +-{MAX_SEMITONES:g}, got {semitones}")
        self.sample_rate = sample_rate
        self.semitones = float(semitones)
        self._bypass = semitones == 0
        self._in_total = 0  # input samples received
        self._out_total = 0  # output samples returned
        if self._bypass:
            return
        self._alpha = 2.0 ** (semitones / 12.0)  # stretch factor, then resample by 1/alpha
        self._frame = 2 * max(16, round(_FRAME_S * sample_rate / 2))
        self._hop_out = self._frame // 2  # synthesis hop: 50 % overlap of periodic Hann sums to 1
        self._hop_in = self._hop_out / self._alpha  # analysis hop (fractional; rounded per frame)
        self._tol = max(4, round(_TOLERANCE_S * sample_rate))
        n = np.arange(self._frame)
        self._window = (0.5 - 0.5 * np.cos(2 * np.pi * n / self._frame)).astype(np.float32)
        # Input buffer, its absolute start index, and WSOLA's frame state.
        # Half a frame of leading zeros so the first real samples are not faded in by the window;
        # what they become in the output is dropped (`_skip`).
        self._buf = np.zeros(self._hop_out, dtype=np.float32)
        self._buf_start = 0
        self._k = 0
        self._prev_pos = -1
        self._ola = np.zeros(self._frame, dtype=np.float32)
        # Frame centres map input (c - L/2) to output (c - L/2) * alpha, so after the resampler the
        # half frame of lead-in comes out as hop_out / alpha samples: drop exactly that.
        self._skip = round(self._hop_out / self._alpha)
        self._pending = np.zeros(0, dtype=np.float32)  # shifted samples not yet returned
        # The stretched signal is read as if sampled at rate*alpha and resampled to rate.
        self._resampler = soxr.ResampleStream(
            sample_rate * self._alpha, sample_rate, 1, dtype="float32", quality="HQ"
        )

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Shift the next chunk; returns what is ready (output lags input by ~50 ms)."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self._in_total += chunk.size
        if self._bypass:
            self._out_total += chunk.size
            return chunk.copy()
        self._buf = np.concatenate([self._buf, chunk])
        stretched = self._run_frames()
        return self._emit(self._resampler.resample_chunk(stretched), final=False)

    def flush(self) -> np.ndarray:
        """The remaining output: afterwards the output is exactly as long as the input."""
        if self._bypass:
            return np.zeros(0, dtype=np.float32)
        # Enough trailing silence for WSOLA frames to cover every real sample; the excess is cut.
        pad = 2 * self._frame + 2 * self._tol + math.ceil(self._hop_in) + self._hop_out
        self._buf = np.concatenate([self._buf, np.zeros(pad, dtype=np.float32)])
        stretched = np.concatenate([self._run_frames(), self._ola])
        self._ola = np.zeros(self._frame, dtype=np.float32)
        resampled = self._resampler.resample_chunk(stretched, last=True)
        return self._emit(resampled, final=True)

    def _run_frames(self) -> np.ndarray:
        """Overlap-add every WSOLA frame the buffered input allows; returns finished samples."""
        frame, hop_out, tol = self._frame, self._hop_out, self._tol
        buf_end = self._buf_start + self._buf.size
        done: list[np.ndarray] = []
        while True:
            nominal = round(self._k * self._hop_in)
            need = nominal + tol + frame
            if self._prev_pos >= 0:
                need = max(need, self._prev_pos + hop_out + frame)
            if need > buf_end:
                break
            if self._prev_pos < 0:
                pos = 0
            else:
                # The frame that best continues the previous one's waveform, near the nominal spot.
                natural = self._slice(self._prev_pos + hop_out, frame)
                lo = max(0, nominal - tol)
                region = self._slice(lo, nominal + tol + frame - lo)
                score = np.correlate(region, natural, mode="valid")
                pos = lo + int(np.argmax(score))
            self._ola += self._window * self._slice(pos, frame)
            done.append(self._ola[:hop_out].copy())
            self._ola = np.concatenate([self._ola[hop_out:], np.zeros(hop_out, dtype=np.float32)])
            self._prev_pos = pos
            self._k += 1
            # Drop input no later frame can reach.
            keep_from = min(round(self._k * self._hop_in) - tol, pos + hop_out)
            drop = keep_from - self._buf_start
            if drop > 0:
                self._buf = self._buf[drop:]
                self._buf_start += drop
        return np.concatenate(done) if done else np.zeros(0, dtype=np.float32)

    def _slice(self, start: int, length: int) -> np.ndarray:
        offset = start - self._buf_start
        return self._buf[offset : offset + length]

    def _emit(self, samples: np.ndarray, *, final: bool) -> np.ndarray:
        """Drop the lead-in, never return more than the input so far; pad or cut at the end."""
        if self._skip:
            cut = min(self._skip, samples.size)
            samples = samples[cut:]
            self._skip -= cut
        pending = np.concatenate([self._pending, samples])
        allowed = self._in_total - self._out_total
        if final and pending.size < allowed:
            pending = np.concatenate([pending, np.zeros(allowed - pending.size, dtype=np.float32)])
        out, self._pending = pending[:allowed], pending[allowed:]
        if final:
            self._pending = np.zeros(0, dtype=np.float32)
        self._out_total += out.size
        return out.astype(np.float32, copy=False)


def shift_pitch(audio: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Shift a whole signal's pitch by `semitones`; the result has the same length."""
    shifter = PitchShifter(sample_rate, semitones)
    head = shifter.process(audio)
    return np.concatenate([head, shifter.flush()])
