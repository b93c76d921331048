"""Streaming encoders: one per response, fed int16 chunks as they are made.

A non-streamed response is the same byte stream, collected, then `finalize` fixes what could not
be known while streaming (a WAV header's sizes, FLAC's sample count and MD5).

Formats and content types:

    wav        audio/wav                 PCM s16le in RIFF/WAVE
    pcm        audio/L16;rate=R;channels=1   raw s16le (RFC 2586 names L16 big-endian; we keep
                                         the existing little-endian output and its name)
    mulaw      audio/PCMU;rate=R         raw G.711 mu-law bytes (RFC 3551/4856 name; `audio/basic`
                                         would only be right at 8 kHz, so we do not use it)
    alaw       audio/PCMA;rate=R         raw G.711 A-law bytes
    wav_mulaw  audio/wav                 WAVE_FORMAT_MULAW (7) in RIFF/WAVE
    wav_alaw   audio/wav                 WAVE_FORMAT_ALAW (6) in RIFF/WAVE
    mp3        audio/mpeg                see codec_stream.py for these four
    opus       audio/ogg; codecs=opus
    aac        audio/aac                 ADTS
    flac       audio/flac
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Protocol

import numpy as np

from sentiric_tts.audio import codec_stream
from sentiric_tts.audio.g711 import alaw_encode, mulaw_encode

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


# RIFF format tags (mmreg.h) and the G.711 header layout: a non-PCM WAVE carries an 18-byte fmt
# chunk (cbSize = 0) and a `fact` chunk with the sample count (sizes "unknown" while streaming).
WAVE_FORMAT_ALAW = 6
WAVE_FORMAT_MULAW = 7


def g711_wav_header(sample_rate: int, format_tag: int, data_bytes: int = _UNKNOWN_SIZE) -> bytes:
    known = data_bytes != _UNKNOWN_SIZE
    fmt = struct.pack("<HHIIHHH", format_tag, 1, sample_rate, sample_rate, 1, 8, 0)
    body = (
        b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<II", 4, data_bytes)  # one byte per sample: the count equals the size
        + b"data"
        + struct.pack("<I", data_bytes)
    )
    riff_size = len(body) + data_bytes if known else _UNKNOWN_SIZE
    return b"RIFF" + struct.pack("<I", riff_size) + body


class G711Encoder:
    """Raw G.711 (one byte per sample); `law` is "mulaw" or "alaw"."""

    def __init__(self, sample_rate: int, law: str) -> None:
        self.sample_rate = sample_rate
        self._encode = mulaw_encode if law == "mulaw" else alaw_encode
        self.file_extension = "ulaw" if law == "mulaw" else "alaw"
        self.content_type = f"audio/{'PCMU' if law == 'mulaw' else 'PCMA'};rate={sample_rate}"

    def header(self) -> bytes:
        return b""

    def encode(self, pcm16: np.ndarray) -> bytes:
        return self._encode(pcm16).tobytes()

    def finish(self) -> bytes:
        return b""

    def finalize(self, whole: bytes) -> bytes:
        return whole


class G711WavEncoder(G711Encoder):
    """G.711 in a WAV file; streamable like `WavEncoder` (sizes fixed by `finalize`)."""

    file_extension = "wav"
    content_type = "audio/wav"

    def __init__(self, sample_rate: int, law: str) -> None:
        super().__init__(sample_rate, law)
        self.file_extension = "wav"
        self.content_type = "audio/wav"
        self._tag = WAVE_FORMAT_MULAW if law == "mulaw" else WAVE_FORMAT_ALAW

    def header(self) -> bytes:
        return g711_wav_header(self.sample_rate, self._tag)

    def finalize(self, whole: bytes) -> bytes:
        header_len = len(g711_wav_header(self.sample_rate, self._tag))
        data_bytes = len(whole) - header_len
        return g711_wav_header(self.sample_rate, self._tag, data_bytes) + whole[header_len:]


# Any PCM-like format takes any rate; this is the set we offer (and test) for them.
COMMON_RATES: tuple[int, ...] = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)

_FACTORIES: dict[str, Callable[[int], StreamEncoder]] = {
    "wav": WavEncoder,
    "pcm": PcmEncoder,
    "mulaw": lambda rate: G711Encoder(rate, "mulaw"),
    "alaw": lambda rate: G711Encoder(rate, "alaw"),
    "wav_mulaw": lambda rate: G711WavEncoder(rate, "mulaw"),
    "wav_alaw": lambda rate: G711WavEncoder(rate, "alaw"),
    "mp3": codec_stream.Mp3Encoder,
    "opus": codec_stream.OpusEncoder,
    "aac": codec_stream.AacEncoder,
    "flac": codec_stream.FlacEncoder,
}

_RATES: dict[str, tuple[int, ...]] = {
    "mp3": codec_stream.MP3_RATES,
    "aac": codec_stream.AAC_RATES,
    # Opus is resampled up to its next native rate, so anything up to 48 kHz works.
    "opus": tuple(rate for rate in COMMON_RATES if rate <= codec_stream.OPUS_CODEC_RATES[-1]),
}

OUTPUT_FORMATS: tuple[str, ...] = tuple(_FACTORIES)


def supported_rates(output_format: str) -> tuple[int, ...]:
    """The sample rates `make_encoder` accepts for `output_format`."""
    if output_format not in _FACTORIES:
        raise ValueError(
            f"Unknown output format '{output_format}'. Choose one of: {', '.join(OUTPUT_FORMATS)}."
        )
    return _RATES.get(output_format, COMMON_RATES)


def make_encoder(output_format: str, sample_rate: int) -> StreamEncoder:
    """A fresh encoder for one response; raises ValueError for an unknown format or a rate it lacks."""
    rates = supported_rates(output_format)
    if sample_rate not in rates:
        raise ValueError(
            f"Sample rate {sample_rate} Hz is not available for {output_format}. "
            f"Choose one of: {', '.join(map(str, rates))}."
        )
    return _FACTORIES[output_format](sample_rate)
