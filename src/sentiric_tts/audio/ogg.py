"""A minimal Ogg writer for Opus (RFC 3533 pages, RFC 7845 Ogg Opus mapping).

FFmpeg's ogg muxer holds packets until a page is "full" (page_duration, 1 s by default), so a
streaming client would wait up to a second for audio it has already been sent the bytes for. Writing
the pages ourselves lets `OggOpusWriter.page(...)` put exactly the packets one `encode()` call made
into one page and hand it out at once; that page is complete and decodable on its own.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

_REVERSE_BITS = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
_MAX_LACING = 255
_HEADER_TYPE_CONTINUED = 0x01
_HEADER_TYPE_BOS = 0x02
_HEADER_TYPE_EOS = 0x04


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first, init 0, no final xor).

    zlib's crc32 is the bit-reflected variant of the same polynomial: reflecting every input byte
    and the result turns one into the other, and zlib runs at C speed (a Python loop per byte would
    cost more than the Opus encoding itself).
    """
    raw = zlib.crc32(data.translate(_REVERSE_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


def opus_head(channels: int, pre_skip: int, input_rate: int, output_gain: int = 0) -> bytes:
    """The OpusHead identification header (RFC 7845 section 5.1), mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, output_gain, 0)


def opus_tags(vendor: str = "sentiric-tts") -> bytes:
    """An OpusTags comment header with no user comments (RFC 7845 section 5.2)."""
    raw = vendor.encode()
    return b"OpusTags" + struct.pack("<I", len(raw)) + raw + struct.pack("<I", 0)


class OggStreamWriter:
    """Pages for one logical bitstream; each call returns finished pages (bytes)."""

    def __init__(self, serial: int) -> None:
        self.serial = serial & 0xFFFFFFFF
        self._sequence = 0
        self._started = False

    def _one_page(self, lacing: bytes, body: bytes, granule: int, header_type: int) -> bytes:
        head = struct.pack(
            "<4sBBqIIIB", b"OggS", 0, header_type, granule, self.serial, self._sequence, 0, len(lacing)
        )
        page = bytearray(head + lacing + body)
        struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
        self._sequence += 1
        return bytes(page)

    def pages(self, packets: Sequence[tuple[bytes, int]], *, eos: bool = False) -> bytes:
        """`(packet, granule after it)` pairs as complete pages, flushed now.

        A page holds at most 255 lacing values, so a long run spills into several pages; each page
        carries the granule of the last packet that ends on it, or -1 when none does (RFC 3533).
        """
        out = bytearray()
        lacing = bytearray()
        body = bytearray()
        continued = False
        granule = -1
        for packet, packet_granule in packets:
            values = [255] * (len(packet) // 255) + [len(packet) % 255]
            data = memoryview(packet)
            for value in values:
                if len(lacing) == _MAX_LACING:
                    out += self._page(lacing, body, granule, continued, eos=False)
                    continued = lacing[-1] == 255  # the packet goes on into the next page
                    lacing.clear()
                    body.clear()
                    granule = -1
                lacing.append(value)
                body += data[:value]
                data = data[value:]
            granule = packet_granule
        if lacing or eos:
            out += self._page(lacing, body, granule, continued, eos=eos)
        return bytes(out)

    def _page(self, lacing: bytearray, body: bytearray, granule: int, continued: bool, *, eos: bool) -> bytes:
        header_type = (_HEADER_TYPE_CONTINUED if continued else 0) | (_HEADER_TYPE_EOS if eos else 0)
        if not self._started:
            header_type |= _HEADER_TYPE_BOS
            self._started = True
        return self._one_page(bytes(lacing), bytes(body), granule, header_type)
