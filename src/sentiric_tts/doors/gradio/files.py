"""Gradio's file folder: in the data folder, bounded in files and bytes, swept by age.

Gradio writes every upload and every result (each spoken WAV) as a file in one folder, which is
/tmp/gradio unless GRADIO_TEMP_DIR names another. It reads that variable when it is imported
and again at run time, so the folder is one per process: the first app that mounts Gradio
chooses it (<cache_dir>/gradio), and later apps in the same process (tests) share it.

Bounds, besides Gradio's own `max_file_size` per file and the HTTP body limit per request
(doors/http/body_limits.py):
- an upload may carry at most as many files as a clone takes (`clone_max_files`); the parts
  are counted as they arrive, and the upload is refused (413) once one file too many has come
  (files of a refused upload are left to the sweep);
- the folder holds at most `gradio_max_files` files and `gradio_max_bytes` bytes: past either,
  Gradio calls that write into it get 503 with Retry-After (when its oldest file ages out);
- files older than an hour are deleted every half hour (and at start, left from the last run),
  with the folders Gradio makes for them.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentiric_tts.doors.http.errors import error_payload

log = logging.getLogger(__name__)

# Every half hour, files older than an hour go: uploads are used by the click that follows them,
# results are fetched by the page as soon as they are made.
SWEEP_EVERY_S = 1800.0
KEEP_S = 3600.0

_process_folder: Path | None = None


def claim_process_folder(wanted: Path) -> Path:
    """The folder Gradio uses in this process: `wanted`, unless an earlier app chose one."""
    global _process_folder
    if _process_folder is None:
        wanted.mkdir(parents=True, exist_ok=True)
        # Written, never read: our own configuration still comes from sentiric_tts.settings only.
        os.environ["GRADIO_TEMP_DIR"] = str(wanted)
        _process_folder = wanted
    elif wanted != _process_folder:
        log.warning("Gradio keeps one folder per process: files stay in %s, not %s", _process_folder, wanted)
    return _process_folder


@dataclass(frozen=True)
class Usage:
    files: int
    bytes: int
    oldest_mtime: float | None


class GradioFolder:
    def __init__(self, path: Path, max_files: int, max_bytes: int, keep_s: float = KEEP_S) -> None:
        self.path = path
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.keep_s = keep_s
        self._lock = threading.Lock()  # one sweep at a time; admissions run on worker threads

    def usage(self) -> Usage:
        files = size = 0
        oldest: float | None = None
        for root, _, names in os.walk(self.path):
            for name in names:
                try:
                    stat = os.lstat(os.path.join(root, name))
                except FileNotFoundError:  # deleted meanwhile (Gradio moves its uploads)
                    continue
                files += 1
                size += stat.st_size
                oldest = stat.st_mtime if oldest is None else min(oldest, stat.st_mtime)
        return Usage(files, size, oldest)

    def sweep(self, now: float | None = None) -> int:
        """Delete files (and emptied folders) older than `keep_s`; returns the files deleted."""
        cutoff = (time.time() if now is None else now) - self.keep_s
        deleted = 0
        emptied: set[str] = set()  # deleting a file makes its folder look new
        with self._lock:
            for root, dirs, names in os.walk(self.path, topdown=False):
                for name in names:
                    path = os.path.join(root, name)
                    try:
                        if os.lstat(path).st_mtime < cutoff:
                            os.remove(path)
                            deleted += 1
                            emptied.add(root)
                    except FileNotFoundError:
                        continue
                for name in dirs:
                    path = os.path.join(root, name)
                    try:
                        # Not a new one: Gradio makes a folder just before it moves a file in.
                        if path in emptied or os.lstat(path).st_mtime < cutoff:
                            os.rmdir(path)
                            emptied.add(root)
                    except OSError:  # not empty, or gone
                        continue
        if deleted:
            log.info("Gradio folder: deleted %d file(s) older than %.0f s", deleted, self.keep_s)
        return deleted

    def is_full(self, usage: Usage) -> bool:
        return usage.files >= self.max_files or usage.bytes >= self.max_bytes

    def room(self) -> int | None:
        """None when a call may write here; else in how many seconds to retry."""
        usage = self.usage()
        if self.is_full(usage):
            now = time.time()
            self.sweep(now)  # files may have aged out since the last sweep
            usage = self.usage()
            if self.is_full(usage):
                oldest = now if usage.oldest_mtime is None else usage.oldest_mtime
                return max(1, math.ceil(oldest + self.keep_s - now))
        return None

    @asynccontextmanager
    async def swept(self, _: Any) -> AsyncIterator[None]:
        """Gradio's app lifespan: a sweep now (files left from the last run), then every half hour."""

        async def sweeping() -> None:
            while True:
                await anyio.to_thread.run_sync(self.sweep)
                await anyio.sleep(SWEEP_EVERY_S)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sweeping)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()


class _PartCounter:
    """Counts multipart delimiters as the body streams by (one may straddle two chunks): a body
    of n parts has n + 1, the last one closing it."""

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"--" + boundary
        self._tail = b""
        self.delimiters = 0

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        self.delimiters += data.count(self._delimiter)
        # Kept: a delimiter's beginning at the end of this chunk (too short to hold a whole one).
        self._tail = data[-(len(self._delimiter) - 1) :]


def _boundary(headers: Headers) -> bytes | None:
    kind, _, params = headers.get("content-type", "").partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    return None


class GradioFilesGuard:
    """Bounds what Gradio's calls may write (the module's doc); every other request passes."""

    def __init__(self, app: ASGIApp, *, folder: GradioFolder, api_path: str, max_upload_files: int) -> None:
        self.app = app
        self._folder = folder
        self._writers = tuple(
            f"{api_path}/{name}" for name in ("upload", "queue/join", "run/", "call/", "api/")
        )
        self._upload = f"{api_path}/upload"
        self._max_upload_files = max_upload_files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "POST" or not path.startswith(self._writers):
            await self.app(scope, receive, send)
            return
        retry_after = await anyio.to_thread.run_sync(self._folder.room)
        if retry_after is not None:
            folder = self._folder
            message = (
                f"Gradio's file folder is full (at most {folder.max_files} files and "
                f"{folder.max_bytes} bytes; files are kept an hour): retry in {retry_after} s, or "
                "use the HTTP API (POST /api/tts, /api/tts/clone), which keeps no files."
            )
            await _answer(
                scope, receive, send, 503, "gradio_files_full", message, {"Retry-After": str(retry_after)}
            )
            return
        boundary = _boundary(Headers(scope=scope)) if path == self._upload else None
        if boundary is None:
            await self.app(scope, receive, send)
            return
        await self._counted_upload(scope, receive, send, _PartCounter(boundary))

    async def _counted_upload(
        self, scope: Scope, receive: Receive, send: Send, counter: _PartCounter
    ) -> None:
        over = False
        started = False

        async def counted_receive() -> Message:
            nonlocal over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                counter.feed(message.get("body", b""))
                if counter.delimiters > self._max_upload_files + 1:
                    # The app is told the client left: it stops parsing, and our 413 goes out.
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to the disconnect; ours goes out instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            message = (
                f"An upload may carry at most {self._max_upload_files} files (the reference clips of "
                "one clone): upload fewer at a time."
            )
            await _answer(scope, receive, send, 413, "too_many_files", message, {"Connection": "close"})


async def _answer(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str, headers: dict[str, str]
) -> None:
    status, body = error_payload(scope.get("path", "/"), status, code, message)
    await JSONResponse(body, status, headers=headers)(scope, receive, send)
