"""Decoding audio a client uploaded, with FFmpeg (PyAV) treated as an untrusted parser.

Left to itself, FFmpeg probes every demuxer it has, and some of them open further files or URLs
while the upload is being opened (concat, HLS, image2, ...). So the demuxer is chosen here from the
upload's first bytes and forced; nested opens are closed by an empty protocol whitelist (inherited by
any demuxer a demuxer opens) and by the demuxers' own options; the chosen stream's codec, sample
rate, channels and declared length are checked before a sample is decoded; and decoding stops as
soon as the decoded audio passes the caller's length limit, so memory stays proportional to it.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Stream

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = "wav, mp3, ogg/opus, webm, m4a, flac"
ACCEPTED_CODECS = "PCM, MP3, Vorbis, Opus, AAC, FLAC, ALAC"
_CODECS = frozenset({"mp3", "vorbis", "opus", "aac", "flac", "alac"})  # and every pcm_* variant
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
MAX_CHANNELS = 8
# Declared lengths can be estimates (an MP3 without a Xing header: from its first frame's bitrate),
# so only a declaration well past the limit is refused before decoding; the decoded count is exact.
_DECLARED_LENGTH_SLACK = 1.5

# Nothing but the bytes handed to av.open may be read: no protocol at all for nested opens. At most
# a few streams: a clip needs one, and each stream costs FFmpeg a codec context.
CONTAINER_OPTIONS = {"protocol_whitelist": "", "max_streams": "16"}
_DEMUXER_OPTIONS: dict[str, dict[str, str]] = {
    # MP4 data references may name other files (and absolute paths); both off, whatever the default.
    "mov": {"enable_drefs": "0", "use_absolute_path": "0"},
}

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_WAV_MAGICS = (b"RIFF", b"RF64", b"BW64")


class UndecodableAudio(Exception):
    """The upload is not audio we decode; str() says why, in words a client can act on."""


class AudioTooLong(Exception):
    """The upload is longer than the limit; `seconds` is its declared length, or (`complete`
    false) how much was decoded before decoding stopped."""

    def __init__(self, seconds: float, complete: bool) -> None:
        super().__init__(f"{seconds:.1f} s")
        self.seconds = seconds
        self.complete = complete


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray
    """Mono float32 at `sample_rate` (the stream's declared rate), finite."""
    sample_rate: int


def _after_id3(data: bytes) -> int:
    """Offset of the first byte after the ID3v2 tags an MP3 or FLAC file may start with."""
    pos = 0
    while data[pos : pos + 3] == b"ID3" and len(data) >= pos + 10:
        size = 0
        for byte in data[pos + 6 : pos + 10]:  # a "syncsafe" integer: 7 bits per byte
            size = (size << 7) | (byte & 0x7F)
        footer = 10 if data[pos + 5] & 0x10 else 0
        pos += 10 + size + footer
    return pos


def _is_mpeg_audio_sync(head: bytes) -> bool:
    # 11 sync bits, then a layer that is not "reserved" (00 there is ADTS AAC, which we do not take).
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 0x03 != 0


def sniff_demuxer(data: bytes) -> str | None:
    """The FFmpeg demuxer for an upload, from its first bytes; None for anything we do not take."""
    if data[:4] in _WAV_MAGICS and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == _EBML_MAGIC:
        return "matroska"  # the matroska,webm demuxer
    if data[4:8] == b"ftyp":
        return "mov"  # the mov,mp4,m4a,3gp,3g2,mj2 demuxer
    head = data[_after_id3(data) :][:4]
    if head == b"fLaC":
        return "flac"
    if _is_mpeg_audio_sync(head):
        return "mp3"
    return None


def _codec_name(stream: Stream) -> str | None:
    context = stream.codec_context
    return None if context is None else str(context.codec.canonical_name)


def _declared_seconds(container: InputContainer, stream: Stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _checked_stream(container: InputContainer, max_seconds: float) -> AudioStream:
    """The upload's first audio stream, once what it declares is within what we decode."""
    if not container.streams.audio:
        raise UndecodableAudio("it holds no audio stream")
    stream = container.streams.audio[0]
    codec = _codec_name(stream)
    if codec is None or not (codec in _CODECS or codec.startswith("pcm_")):
        described = f"'{codec}'" if codec else "in a codec we do not know"
        raise UndecodableAudio(f"its audio is {described}; accepted codecs are {ACCEPTED_CODECS}")
    rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UndecodableAudio(
            f"it declares a sample rate of {rate} Hz; {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz is accepted"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise UndecodableAudio(f"it declares {channels} channels; 1-{MAX_CHANNELS} are accepted")
    declared = _declared_seconds(container, stream)
    if declared > max_seconds * _DECLARED_LENGTH_SLACK:
        raise AudioTooLong(declared, complete=True)
    return stream


def _decoded(container: InputContainer, stream: AudioStream, max_seconds: float) -> DecodedAudio:
    """Frame by frame, mixed to mono float32 at the declared rate, stopping past the limit."""
    rate = stream.codec_context.sample_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    source: tuple[str, str, int] | None = None
    limit = max_seconds * rate
    pieces: list[np.ndarray] = []
    count = 0

    def keep(frames: list[av.AudioFrame]) -> None:
        nonlocal count
        for out in frames:
            piece = out.to_ndarray().reshape(-1)
            count += len(piece)
            if count > limit:
                raise AudioTooLong(count / rate, complete=False)
            pieces.append(piece)

    for packet in container.demux(stream):
        for frame in packet.decode():
            if not MIN_SAMPLE_RATE <= frame.sample_rate <= MAX_SAMPLE_RATE:
                raise UndecodableAudio(f"a frame of it has a sample rate of {frame.sample_rate} Hz")
            if len(frame.layout.channels) > MAX_CHANNELS:
                raise UndecodableAudio(f"a frame of it has {len(frame.layout.channels)} channels")
            frame_source = (frame.format.name, frame.layout.name, frame.sample_rate)
            if source is not None and frame_source != source:
                # A resampler takes one input format; a stream that changes it (a chained Ogg, a
                # damaged frame header) gets a fresh one with the same output.
                keep(resampler.resample(None))
                resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            source = frame_source
            keep(resampler.resample(frame))
    keep(resampler.resample(None))
    if not pieces:
        raise UndecodableAudio("not one sample of it decodes")
    audio = np.concatenate(pieces).astype(np.float32, copy=False)
    return DecodedAudio(np.nan_to_num(audio, copy=False), rate)


def decode_upload(data: bytes, max_seconds: float) -> DecodedAudio:
    """Decode an uploaded clip of at most `max_seconds` (which bounds the work and the memory), or
    raise UndecodableAudio / AudioTooLong; no other exception escapes for anything the bytes hold."""
    demuxer = sniff_demuxer(data)
    if demuxer is None:
        raise UndecodableAudio("its first bytes match none of the accepted formats")
    options = {**CONTAINER_OPTIONS, **_DEMUXER_OPTIONS.get(demuxer, {})}
    try:
        with av.open(
            io.BytesIO(data), mode="r", format=demuxer, container_options=options, metadata_errors="replace"
        ) as container:
            return _decoded(container, _checked_stream(container, max_seconds), max_seconds)
    except (UndecodableAudio, AudioTooLong):
        raise
    except av.FFmpegError as exc:
        log.debug("FFmpeg refused an upload (%s demuxer): %s", demuxer, exc)
        raise UndecodableAudio(f"it is damaged or truncated ({exc.strerror})") from exc
    except Exception as exc:
        # The decoder is untrusted: a hostile file that trips PyAV is still the file's fault, but
        # a bug of ours would hide here too, so it is logged with its traceback.
        log.warning("decoding an upload (%s demuxer) failed unexpectedly", demuxer, exc_info=True)
        raise UndecodableAudio("it is damaged or truncated") from exc
