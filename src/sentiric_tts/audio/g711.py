"""ITU-T G.711 mu-law and A-law, exact, with 64 Ki lookup tables.

The tables are built once from the reference segment encoding (the classic Sun/CCITT `g711.c`,
which FFmpeg's pcm_mulaw/pcm_alaw codecs also follow), so encoding is a single numpy take per chunk
and bit-exact with every other G.711 implementation. `audioop` did this before it left the
standard library in Python 3.13.
"""

from __future__ import annotations

from functools import cache

import numpy as np

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159


def _all_int16() -> np.ndarray:
    # Ordered by the uint16 bit pattern, so a table is indexed with `pcm16.view(np.uint16)`.
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _segment(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    # First segment whose end is >= value (8 means "beyond the last segment").
    return np.searchsorted(ends, values, side="left")


@cache
def _ulaw_encode_table() -> np.ndarray:
    pcm = _all_int16() >> 2  # mu-law works on 14-bit magnitudes
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(mag, _SEG_UEND)
    code = (seg << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


@cache
def _alaw_encode_table() -> np.ndarray:
    pcm = _all_int16() >> 3  # A-law works on 13-bit magnitudes
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(mag, _SEG_AEND)
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = (seg << 4) | ((mag >> shift) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


@cache
def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


@cache
def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _as_int16(pcm16: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pcm16, dtype=np.int16).reshape(-1)


def mulaw_encode(pcm16: np.ndarray) -> np.ndarray:
    """int16 samples -> G.711 mu-law bytes (uint8)."""
    return _ulaw_encode_table()[_as_int16(pcm16).view(np.uint16)]


def alaw_encode(pcm16: np.ndarray) -> np.ndarray:
    """int16 samples -> G.711 A-law bytes (uint8)."""
    return _alaw_encode_table()[_as_int16(pcm16).view(np.uint16)]


def mulaw_decode(data: bytes | np.ndarray) -> np.ndarray:
    """G.711 mu-law bytes -> int16 samples."""
    return _ulaw_decode_table()[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes | np.ndarray) -> np.ndarray:
    """G.711 A-law bytes -> int16 samples."""
    return _alaw_decode_table()[np.frombuffer(data, dtype=np.uint8)]
