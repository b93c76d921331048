"""Whole-signal time stretch for speech (WSOLA), used to land an exact duration.

Piper's length scale changes speech rate less than proportionally (each phoneme's duration is
rounded up to whole frames), so a 50 % rate would come out about 1.75 x long instead of 2 x. The
Piper engine synthesizes at the asked length scale, then corrects the small remaining mismatch with
this stretch; WSOLA keeps pitch periods intact, and for corrections of a few tens of percent the
result is indistinguishable from the engine's own timing.
"""

from __future__ import annotations

import numpy as np

_FRAME_S = 0.030
_TOLERANCE_S = 0.0075


def stretch_to_length(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`audio` stretched (or compressed) in time to exactly `target` samples, pitch unchanged."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if target <= 0:
        return np.zeros(0, np.float32)
    if audio.size == target or audio.size < 4:
        return np.resize(audio, target) if audio.size else np.zeros(target, np.float32)
    frame = 2 * max(16, round(_FRAME_S * rate / 2))
    hop_out = frame // 2
    tol = max(4, round(_TOLERANCE_S * rate))
    hop_in = hop_out * audio.size / target
    frames = int(np.ceil(target / hop_out)) + 1
    padded = np.concatenate(
        [
            np.zeros(tol + hop_out, np.float32),
            audio,
            np.zeros(frame + 2 * tol + int(hop_in) + hop_out, np.float32),
        ]
    )
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)).astype(np.float32)
    out = np.zeros(frames * hop_out + frame, np.float32)
    previous = tol  # position in `padded` of the previous frame
    for k in range(frames):
        nominal = tol + round(k * hop_in)
        if k == 0:
            position = nominal
        else:
            natural = padded[previous + hop_out : previous + hop_out + frame]
            lo = max(0, nominal - tol)
            region = padded[lo : nominal + tol + frame]
            if region.size < frame or natural.size < frame:
                position = nominal
            else:
                position = lo + int(np.argmax(np.correlate(region, natural, mode="valid")))
        piece = padded[position : position + frame]
        out[k * hop_out : k * hop_out + piece.size] += window[: piece.size] * piece
        previous = position
    # The lead-in of hop_out zeros maps to the first hop_out output samples.
    return out[hop_out : hop_out + target].copy()
