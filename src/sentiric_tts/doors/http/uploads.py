"""Uploaded reference clips, read with a byte limit."""

from __future__ import annotations

from fastapi import UploadFile

from sentiric_tts.failures import Failure, RequestError


async def read_uploads(files: list[UploadFile], max_bytes: int) -> list[tuple[str, bytes]]:
    """Read uploaded clips, refusing one over the byte limit without reading all of it."""
    clips: list[tuple[str, bytes]] = []
    for index, upload in enumerate(files):
        name = upload.filename or f"file {index + 1}"
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise RequestError(
                f"Reference '{name}' is over the limit of {max_bytes} bytes.",
                param="files",
                code="reference_too_large",
                kind=Failure.TOO_LARGE,
            )
        clips.append((name, data))
    return clips
