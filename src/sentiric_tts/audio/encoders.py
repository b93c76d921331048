"""Streaming encoders: one per response, fed int16 chunks as they are made.

A non-streamed response is the same byte stream, collected, then `finalize` fixes what could not
be known while streaming (a WAV header's sizes).
"""

from __future__ import annotations

import struct
from typing import Protocol

import numpy as np

# A streamed WAV cannot know its length: these sizes tell players "read until the end". Every
# common player and decoder (ffmpeg, browsers, libsndfile) accepts them.
_UNKNOWN_SIZE = 0xFFFFFFFF


class StreamEncoder(Protocol):
    content_type: str
    file_extension: str

    def header(self) -> bytes: ...

    def encode(self, pcm16: np.ndarray) -> bytes: ...

    def finish(self) -> bytes: ...

    def finalize(self, whole: bytes) -> bytes:
        """Turn the complete collected stream into a file whose header is exact."""
        ...


def wav_header(sample_rate: int, data_bytes: int = _UNKNOWN_SIZE, channels: int = 1) -> bytes:
    block_align = channels * 2
    riff_size = _UNKNOWN_SIZE if data_bytes == _UNKNOWN_SIZE else 36 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block_align, block_align, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


class WavEncoder:
    file_extension = "wav"
    content_type = "audio/wav"

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate

    def header(self) -> bytes:
        return wav_header(self.sample_rate)

    def encode(self, pcm16: np.ndarray) -> bytes:
        return pcm16.astype("<i2", copy=False).tobytes()

    def finish(self) -> bytes:
        return b""

    def finalize(self, whole: bytes) -> bytes:
        header_len = len(wav_header(self.sample_rate))
        return wav_header(self.sample_rate, len(whole) - header_len) + whole[header_len:]


class PcmEncoder:
    """Raw signed 16-bit little-endian mono; the content type names the rate."""

    file_extension = "pcm"

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.content_type = f"audio/L16;rate={sample_rate};channels=1"

    def header(self) -> bytes:
        return b""

    def encode(self, pcm16: np.ndarray) -> bytes:
        return pcm16.astype("<i2", copy=False).tobytes()

    def finish(self) -> bytes:
        return b""

    def finalize(self, whole: bytes) -> bytes:
        return whole


_ENCODERS: dict[str, type[WavEncoder] | type[PcmEncoder]] = {"wav": WavEncoder, "pcm": PcmEncoder}

OUTPUT_FORMATS: tuple[str, ...] = tuple(_ENCODERS)


def make_encoder(output_format: str, sample_rate: int) -> StreamEncoder:
    return _ENCODERS[output_format](sample_rate)
