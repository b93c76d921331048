"""An embedded voice library (library_store.py's folders), read without changing it: what
`sentiric-tts library copy` moves into another store (library_copy.py).

Opening a LibraryStore checks and repairs its library (library_recovery.py), which writes. A copy
leaves its source exactly as it found it (it may be a backup, or another server's library), so
this reads the voice folders directly, as recovery would trust them: a voice is a folder `v_<id>`
with a readable voice.json, its clips are the files voice.json names, and latents.bin is taken
when it is intact and was made from those clips. The SQLite index is not read: it only indexes
the folders. Leftovers of interrupted writes (`.tmp-v_*`, `.del-v_*`) are not voices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sentiric_tts.voices.library_index import DB_NAME
from sentiric_tts.voices.library_records import (
    LATENTS_NAME,
    RECORD_NAME,
    VOICE_ID,
    Latents,
    LibraryVoice,
    clip_name,
    decode_latents,
    decode_record,
)

_READ_ATTEMPTS = 3
"""A voice edited while it is read (a running server) is read again, up to this many times."""


class SourceError(Exception):
    """The folder is not a voice library that can be read (missing, not a folder, unreadable)."""


class VoiceUnreadable(Exception):
    """One voice folder cannot be copied; says why, in a line."""


@dataclass(frozen=True)
class UnreadableFolder:
    folder: str
    reason: str


@dataclass(frozen=True)
class SourceVoice:
    voice: LibraryVoice
    clips: tuple[bytes, ...]
    """The samples' bytes as uploaded, in the voice's order."""
    latents: Latents | None
    """Its conditioning; None when there is none, or it is damaged or stale (recomputed on use)."""


class EmbeddedLibrary:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not directory.exists():
            raise SourceError(f"there is no voice library at {directory}: the folder does not exist")
        if not directory.is_dir():
            raise SourceError(f"{directory} is not a folder, so not a voice library")
        try:
            self._folders = sorted(
                entry.name for entry in directory.iterdir() if VOICE_ID.fullmatch(entry.name)
            )
            has_index = (directory / DB_NAME).is_file()
        except OSError as exc:
            raise SourceError(f"cannot read the voice library at {directory}: {exc.strerror or exc}") from exc
        if not has_index and not self._folders:
            raise SourceError(
                f"{directory} is not a voice library: it has neither {DB_NAME} nor voice folders (v_...). "
                "Name the library's folder (TTS_VOICE_LIBRARY_DIR, default <TTS_DATA_DIR>/voices)"
            )

    def voices(self) -> tuple[list[LibraryVoice], list[UnreadableFolder]]:
        """The voices the folders hold, in creation order, and the folders that hold none."""
        found: list[LibraryVoice] = []
        unreadable: list[UnreadableFolder] = []
        for name in self._folders:
            try:
                found.append(self._record(self.directory / name))
            except VoiceUnreadable as exc:
                unreadable.append(UnreadableFolder(name, str(exc)))
        found.sort(key=lambda voice: (voice.created_at, voice.id))
        return found, unreadable

    def read(self, voice: LibraryVoice) -> SourceVoice:
        """The voice's clips and latents, as its voice.json names them now (voice.json is read
        again: a running server may have edited the voice since it was listed)."""
        folder = self.directory / voice.id
        for _ in range(_READ_ATTEMPTS):
            current = self._record(folder)
            try:
                clips = tuple((folder / clip_name(s.id)).read_bytes() for s in current.samples)
            except FileNotFoundError:
                if self._record(folder) != current:
                    continue  # a sample removed meanwhile: read what the voice is now
                missing = [s.id for s in current.samples if not (folder / clip_name(s.id)).is_file()]
                raise VoiceUnreadable(
                    f"clip file(s) missing from {folder} ({', '.join(missing)}): restore them, or "
                    "remove those samples on the server that owns this library, then copy again"
                ) from None
            except OSError as exc:
                raise VoiceUnreadable(f"cannot read its clips in {folder}: {exc.strerror or exc}") from exc
            if self._record(folder) == current:
                return SourceVoice(current, clips, self._latents(folder, current))
        raise VoiceUnreadable(f"{folder} kept changing while it was read: copy it again when it is quiet")

    @staticmethod
    def _record(folder: Path) -> LibraryVoice:
        try:
            data = (folder / RECORD_NAME).read_bytes()
        except FileNotFoundError:
            raise VoiceUnreadable(
                f"{folder} has no {RECORD_NAME}: start a server on this library once (it restores the "
                "file from its index, or upgrades a library from an older version), then copy again"
            ) from None
        except OSError as exc:
            raise VoiceUnreadable(f"cannot read {folder / RECORD_NAME}: {exc.strerror or exc}") from exc
        voice = decode_record(data)
        if voice is None or voice.id != folder.name:
            raise VoiceUnreadable(
                f"{folder / RECORD_NAME} is damaged: start a server on this library once (it restores "
                "the file from its index), then copy again"
            )
        return voice

    @staticmethod
    def _latents(folder: Path, voice: LibraryVoice) -> Latents | None:
        try:
            latents = decode_latents((folder / LATENTS_NAME).read_bytes())
        except OSError:  # none, or unreadable: conditioning is derived, the target recomputes it
            return None
        if latents is None or latents.reference_digest != voice.reference_digest:
            return None
        return latents
