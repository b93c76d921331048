"""Reading Wyoming events with the `wyoming` package's own framing, bounded.

`wyoming.event.async_read_event` reads a JSON header line, then `data_length` bytes of JSON
data and `payload_length` bytes of payload with `readexactly`, holding each whole. It returns
None both at the end of the stream and when a line is not JSON (it swallows ValueError), and
raises on a header of the wrong shape. `BoundedReader` is the StreamReader it is given:

- `readexactly(n)` over `max_event_bytes` reads the n bytes in small pieces, keeps none of
  them, and raises EventTooLarge: a declared 10 MB payload costs no 10 MB of memory;
- `readline` refuses a header line longer than the StreamReader's limit (64 KiB): the line is
  read past, up to `max_event_bytes` (then the connection is closed), and HeaderTooLong raised;
- it remembers the header line and what was read after it, so that after any bad event
  `read_event` skips the data and payload the header declared and was not read: the next
  event starts where the client sent it, and the connection goes on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from wyoming.event import Event, async_read_event

DISCARD_CHUNK_BYTES = 64 * 1024
"""What is held at once while reading past an oversized data, payload or header line."""


class BadEvent(Exception):
    """An event that cannot be served; the stream is at the next event (unless `fatal`)."""

    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal
        """The stream cannot be followed further: answer, then close the connection."""


class EventTooLarge(Exception):
    """A declared data or payload length over the limit; its bytes were read past."""

    def __init__(self, declared: int, limit: int) -> None:
        super().__init__(f"{declared} bytes declared; the limit is {limit}")
        self.declared = declared
        self.limit = limit


class HeaderTooLong(Exception):
    """A header line longer than the StreamReader's limit; it was read past (when `skipped`)."""

    def __init__(self, limit: int, skipped: bool) -> None:
        super().__init__(f"a header line over {limit} bytes")
        self.limit = limit
        self.skipped = skipped


class Unframed(Exception):
    """A length that is no byte count: where the next event starts cannot be known."""


@dataclass
class _Header:
    line: bytes = b""
    reads: int = 0
    """How many of the declared (non-empty) data and payload, in that order, were read or read
    past."""


class BoundedReader:
    """The StreamReader `async_read_event` reads from, with the bounds in the module doc."""

    def __init__(self, reader: asyncio.StreamReader, max_event_bytes: int) -> None:
        self._reader = reader
        self.max_event_bytes = max_event_bytes
        self._header = _Header()
        self.discarded = 0
        """Bytes read past and dropped so far (for tests and logs)."""
        self.largest_read = 0
        """The most bytes any one read held (for tests)."""

    @property
    def line_limit(self) -> int:
        return int(getattr(self._reader, "_limit", 2**16))

    async def readline(self) -> bytes:
        self._header = _Header()
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # the stream ended within the line
            line = exc.partial
        except asyncio.LimitOverrunError as exc:
            skipped = await self._skip_line(exc.consumed)
            raise HeaderTooLong(self.line_limit, skipped) from None
        self._header.line = line
        self.largest_read = max(self.largest_read, len(line))
        return line

    async def readexactly(self, n: int) -> bytes:
        if type(n) is not int or n < 0:
            raise Unframed(f"a length of {n!r}")
        self._header.reads += 1
        if n > self.max_event_bytes:
            await self.discard(n)
            raise EventTooLarge(n, self.max_event_bytes)
        data = await self._reader.readexactly(n)
        self.largest_read = max(self.largest_read, n)
        return data

    async def discard(self, n: int) -> None:
        """Read `n` bytes and drop them, a piece at a time (IncompleteReadError at the end)."""
        left = n
        while left > 0:
            piece = await self._reader.read(min(left, DISCARD_CHUNK_BYTES))
            if not piece:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(piece)
            self.discarded += len(piece)
            self.largest_read = max(self.largest_read, len(piece))

    async def _skip_line(self, consumed: int) -> bool:
        """Read past the rest of an overlong line; False when it is longer than
        `max_event_bytes` (or the stream ended first): the connection cannot go on."""
        skipped = 0
        while True:
            await self.discard(max(consumed, 1))
            skipped += max(consumed, 1)
            if skipped > self.max_event_bytes:
                return False
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return False
            except asyncio.LimitOverrunError as exc:
                consumed = exc.consumed
                continue
            self.discarded += len(line)
            return True

    async def skip_declared(self) -> None:
        """After a bad event: read past the data and payload its header declared and that were
        not read. Unframed when the header does not say how long they are."""
        try:
            header = json.loads(self._header.line)
        except ValueError:
            return  # not JSON: a line of its own, nothing declared
        if not isinstance(header, dict):
            return
        declared = []  # what async_read_event reads, in its order: data, then payload
        for length in (header.get("data_length"), header.get("payload_length")):
            if length is None:
                continue
            if type(length) is not int or length < 0:
                raise Unframed(f"a length of {length!r}")
            if length:
                declared.append(length)
        for length in declared[self._header.reads :]:
            await self.discard(length)

    def feed_eof(self) -> None:
        self._reader.feed_eof()


async def read_event(reader: BoundedReader) -> Event | None:
    """The next event; None at the end of the stream. BadEvent for one that cannot be read: the
    stream is then at the next event, unless the error is `fatal`."""
    try:
        event = await async_read_event(reader)  # type: ignore[arg-type]
        if event is None and not reader._header.line:
            return None  # the end of the stream
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    except EventTooLarge as exc:
        await _skip_rest(reader)
        raise BadEvent(
            "too_large",
            f"The event declares {exc.declared} bytes of data or payload; the limit is {exc.limit}.",
        ) from None
    except HeaderTooLong as exc:
        closing = "" if exc.skipped else f" and the line over {reader.max_event_bytes}: closing"
        raise BadEvent(
            "too_large", f"An event's header line is over {exc.limit} bytes{closing}.", fatal=not exc.skipped
        ) from None
    except Unframed as exc:
        raise BadEvent("invalid_event", f"Not a Wyoming event: {exc}.", fatal=True) from None
    except Exception:  # the header is JSON of another shape (no type, a list, data not an object)
        await _skip_rest(reader)
        raise BadEvent(
            "invalid_event",
            "Not a Wyoming event: send a JSON object with a 'type' (and data_length or "
            "payload_length where bytes follow), one per line.",
        ) from None
    if event is None:  # a line that is not JSON, or data that is not JSON
        await _skip_rest(reader)
        raise BadEvent("invalid_event", "Not a Wyoming event: the header line or its data is not JSON.")
    if not isinstance(event.type, str) or not isinstance(event.data, dict):
        raise BadEvent("invalid_event", "Not a Wyoming event: 'type' is text and 'data' an object.")
    return event


async def _skip_rest(reader: BoundedReader) -> None:
    try:
        await reader.skip_declared()
    except Unframed as exc:
        raise BadEvent("invalid_event", f"Not a Wyoming event: {exc}.", fatal=True) from None
    except (EventTooLarge, asyncio.IncompleteReadError, ConnectionError):
        raise BadEvent("invalid_event", "The stream ended within an event.", fatal=True) from None
