"""Sample conversions."""

from __future__ import annotations

import numpy as np


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    """Clip float audio to [-1, 1] and quantise it to int16 with rounding."""
    return np.rint(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
