"""Compressed streaming encoders on PyAV (FFmpeg's libraries, shipped in the `av` wheel).

One codec context (and, where FFmpeg muxes, one container) lives for the whole response and is fed
chunk by chunk; after every `encode()` we hand out whatever complete bytes exist so far. How each
format stays playable when a client starts (or stops) at any point we have flushed:

* mp3  - bare MPEG audio frames: no ID3v2 tag and no Xing/LAME frame (that frame only helps when
  the muxer can seek back to fill in its counts, which a stream cannot). Rates of 8-12 kHz use
  MPEG-2.5, 16-24 kHz MPEG-2 and 32-48 kHz MPEG-1; libmp3lame handles all three.
* aac  - ADTS: every frame carries its own 7-byte header, so any cut at a frame boundary plays.
* flac - the STREAMINFO header goes out first with total samples = 0 and MD5 = 0, which the FLAC
  spec defines as "unknown" (the streamable form); frames follow, each self-synchronising.
  `finalize` patches the exact sample count and MD5 into a whole file.
* opus - in Ogg, paginated by our own `OggStreamWriter`: the packets from one `encode()` call go
  out as one complete page (FFmpeg's muxer would hold them up to a second). The end trim is in the
  last page's granule position, so decoders drop the encoder's padding exactly.

`avio` flushing: containers are opened with `flush_packets=1`, so bytes leave FFmpeg's I/O buffer
after every packet instead of after 32 KiB.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from fractions import Fraction
from typing import Any

import av
import numpy as np

from sentiric_tts.audio.ogg import OggStreamWriter, opus_head, opus_tags
from sentiric_tts.audio.resample import StreamResampler

# --- bitrates (bits per second, mono) ---------------------------------------------------------
# Speech needs far less than music: these are transparent-enough for TTS at each bandwidth.
MP3_BITRATE_NARROW = 32_000  # 8-12 kHz (MPEG-2.5): 4-6 kHz of bandwidth, telephone quality and up
MP3_BITRATE_SPEECH = 64_000  # 16-24 kHz (MPEG-2)
MP3_BITRATE_WIDE = 96_000  # 32-48 kHz (MPEG-1)
OPUS_BITRATE = 32_000  # Opus is near-transparent for mono speech at 32 kb/s at any of its rates
AAC_BITRATE = 64_000  # 16 kHz and up
AAC_BITRATE_NARROW = 32_000  # below 16 kHz: FFmpeg's AAC caps a frame at 6144 bits, 48 kb/s at 8 kHz

# Rates each codec accepts natively (FFmpeg's lists), as offered by `supported_rates`.
MP3_RATES: tuple[int, ...] = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
AAC_RATES: tuple[int, ...] = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
OPUS_CODEC_RATES: tuple[int, ...] = (8000, 12000, 16000, 24000, 48000)
OPUS_GRANULE_RATE = 48_000  # Ogg Opus granule positions always count 48 kHz samples (RFC 7845)


def mp3_bitrate(sample_rate: int) -> int:
    if sample_rate <= 12000:
        return MP3_BITRATE_NARROW
    return MP3_BITRATE_SPEECH if sample_rate <= 24000 else MP3_BITRATE_WIDE


def aac_bitrate(sample_rate: int) -> int:
    return AAC_BITRATE if sample_rate >= 16000 else AAC_BITRATE_NARROW


def opus_codec_rate(sample_rate: int) -> int:
    """The nearest Opus rate at or above `sample_rate` (48 kHz above that), so nothing is lost."""
    return next((rate for rate in OPUS_CODEC_RATES if rate >= sample_rate), OPUS_CODEC_RATES[-1])


class _Sink:
    """A write-only file for FFmpeg: having no seek/tell tells muxers the output is a stream."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _frame(samples: np.ndarray, fmt: str, rate: int, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format=fmt, layout="mono")
    frame.sample_rate = rate
    frame.time_base = Fraction(1, rate)
    frame.pts = pts
    return frame


class MuxedEncoder:
    """An FFmpeg encoder + muxer pair writing into a drained in-memory sink."""

    def __init__(
        self,
        sample_rate: int,
        *,
        muxer: str,
        codec: str,
        sample_format: str,
        bit_rate: int | None,
        muxer_options: dict[str, str],
    ) -> None:
        self.sample_rate = sample_rate
        self._sink = _Sink()
        self._container = av.open(
            self._sink, mode="w", format=muxer, options={"flush_packets": "1", **muxer_options}
        )
        self._stream = self._container.add_stream(codec, rate=sample_rate)
        context = self._stream.codec_context
        context.layout = "mono"
        context.format = sample_format
        context.time_base = Fraction(1, sample_rate)
        if bit_rate is not None:
            context.bit_rate = bit_rate
        self._samples = 0
        self._closed = False

    def header(self) -> bytes:
        self._container.start_encoding()  # writes the container header (if the format has one)
        return self._sink.drain()

    def encode(self, pcm16: np.ndarray) -> bytes:
        pcm16 = np.ascontiguousarray(pcm16, dtype=np.int16).reshape(-1)
        if pcm16.size:
            frame = _frame(pcm16, "s16", self.sample_rate, self._samples)
            self._samples += pcm16.size
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return self._sink.drain()

    def finish(self) -> bytes:
        if not self._closed:
            self._closed = True
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()  # trailer; muxers skip their seek-back rewrites on a stream
        return self._sink.drain()

    def finalize(self, whole: bytes) -> bytes:
        return whole


class Mp3Encoder(MuxedEncoder):
    file_extension = "mp3"
    content_type = "audio/mpeg"

    def __init__(self, sample_rate: int) -> None:
        super().__init__(
            sample_rate,
            muxer="mp3",
            codec="libmp3lame",
            sample_format="s16p",
            bit_rate=mp3_bitrate(sample_rate),
            muxer_options={"write_xing": "0", "id3v2_version": "0"},
        )


class AacEncoder(MuxedEncoder):
    file_extension = "aac"
    content_type = "audio/aac"

    def __init__(self, sample_rate: int) -> None:
        super().__init__(
            sample_rate,
            muxer="adts",
            codec="aac",
            sample_format="fltp",
            bit_rate=aac_bitrate(sample_rate),
            muxer_options={},
        )


# STREAMINFO sits right after "fLaC" and its 4-byte block header (FLAC format spec).
_STREAMINFO_OFFSET = 8
_STREAMINFO_FIELDS = _STREAMINFO_OFFSET + 10  # rate/channels/bps/total-samples, 64 bits
_STREAMINFO_MD5 = _STREAMINFO_OFFSET + 18


class FlacEncoder(MuxedEncoder):
    file_extension = "flac"
    content_type = "audio/flac"

    def __init__(self, sample_rate: int) -> None:
        # No padding block: it only exists to let a seeking writer grow metadata later.
        super().__init__(
            sample_rate,
            muxer="flac",
            codec="flac",
            sample_format="s16",
            bit_rate=None,
            muxer_options={"metadata_header_padding": "0"},
        )
        self._md5 = hashlib.md5()

    def encode(self, pcm16: np.ndarray) -> bytes:
        pcm16 = np.ascontiguousarray(pcm16, dtype="<i2").reshape(-1)
        self._md5.update(pcm16.tobytes())  # FLAC's MD5 covers the samples as little-endian bytes
        return super().encode(pcm16)

    def finalize(self, whole: bytes) -> bytes:
        """Fill in STREAMINFO's total-samples and MD5, which a stream had to leave 'unknown'."""
        if whole[:4] != b"fLaC" or len(whole) < _STREAMINFO_MD5 + 16:
            return whole
        patched = bytearray(whole)
        (fields,) = struct.unpack_from(">Q", patched, _STREAMINFO_FIELDS)
        fields = (fields & ~((1 << 36) - 1)) | (self._samples & ((1 << 36) - 1))
        struct.pack_into(">Q", patched, _STREAMINFO_FIELDS, fields)
        patched[_STREAMINFO_MD5 : _STREAMINFO_MD5 + 16] = self._md5.digest()
        return bytes(patched)


class OpusEncoder:
    """Opus in Ogg; input at any rate is resampled (statefully) to the nearest Opus rate."""

    file_extension = "opus"
    content_type = "audio/ogg; codecs=opus"

    def __init__(self, sample_rate: int, bit_rate: int = OPUS_BITRATE) -> None:
        self.sample_rate = sample_rate
        self.codec_rate = opus_codec_rate(sample_rate)
        self._resampler = StreamResampler(sample_rate, self.codec_rate)
        context = av.CodecContext.create("libopus", "w")
        context.sample_rate = self.codec_rate
        context.layout = "mono"
        context.format = "flt"
        context.time_base = Fraction(1, self.codec_rate)
        context.bit_rate = bit_rate
        context.open()
        self._context = context
        # libopus reports its look-ahead (pre-skip) in the OpusHead it builds as extradata.
        extradata = bytes(context.extradata or b"")
        self.pre_skip = struct.unpack_from("<H", extradata, 10)[0] if len(extradata) >= 12 else 312
        self._granule_scale = OPUS_GRANULE_RATE // self.codec_rate
        self._ogg = OggStreamWriter(serial=zlib.crc32(f"{id(self)}".encode()))
        self._samples = 0
        self._granule = 0
        self._closed = False

    def header(self) -> bytes:
        # OpusHead must be alone on the first page and OpusTags must start the second (RFC 7845).
        # OpusHead's input-rate field is informational: we put the client's requested rate there,
        # even when the codec runs at a higher Opus rate, so players that honour it play it back
        # at that rate.
        head = opus_head(1, self.pre_skip, self.sample_rate)
        return self._ogg.pages([(head, 0)]) + self._ogg.pages([(opus_tags(), 0)])

    def _packets(self, frame: av.AudioFrame | None) -> list[tuple[bytes, int]]:
        out = []
        for packet in self._context.encode(frame):
            # Packet pts start at -pre_skip (codec rate); the granule counts decoded 48 kHz samples,
            # pre-skip included, and the last packet's shortened duration becomes the end trim.
            end = int(packet.pts or 0) + int(packet.duration or 0)
            self._granule = max(self._granule, end * self._granule_scale + self.pre_skip)
            out.append((bytes(packet), self._granule))
        return out

    def _encode_float(self, audio: np.ndarray) -> list[tuple[bytes, int]]:
        if not audio.size:
            return []
        frame = _frame(np.ascontiguousarray(audio, dtype=np.float32), "flt", self.codec_rate, self._samples)
        self._samples += audio.size
        return self._packets(frame)

    def encode(self, pcm16: np.ndarray) -> bytes:
        audio = np.asarray(pcm16, dtype=np.float32).reshape(-1) / 32768.0
        packets = self._encode_float(self._resampler.process(audio))
        return self._ogg.pages(packets) if packets else b""

    def finish(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        packets = self._encode_float(self._resampler.flush()) + self._packets(None)
        return self._ogg.pages(packets, eos=True)

    def finalize(self, whole: bytes) -> bytes:
        return whole
