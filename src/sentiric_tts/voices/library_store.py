"""The voice library's store: one folder per voice, indexed in SQLite.

Layout under the library folder:
    library.db                    the index (library_index.py): voices and samples, WAL mode
    v_<12 hex>/voice.json         what the voice is: name, owner, samples in order (authoritative)
    v_<12 hex>/s_<12 hex>.clip    a reference clip exactly as it was uploaded
    v_<12 hex>/latents.bin        the voice's conditioning, tagged with what it was computed from

The store knows nothing about HTTP or engines: it keeps bytes, voice.json and rows consistent.
Every change holds one lock and one SQLite transaction, and takes effect in a single step that a
crash cannot split (library_recovery.py lists them and what a start finds after a crash at any
point): a create or sample-add killed at any moment leaves the whole change or none of it. Files
are written under temporary names and renamed; a change that fails removes what it wrote, and a
full disk answers 507 with the library unchanged.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sentiric_tts.voices.durable_files import is_disk_full, sync_directory, write_atomically, write_temporary
from sentiric_tts.voices.library_index import LibraryIndex, Transaction
from sentiric_tts.voices.library_records import (
    LATENTS_NAME,
    RECORD_NAME,
    SAMPLE_ID,
    VOICE_ID,
    Latents,
    LibrarySample,
    LibraryVoice,
    NewSample,
    clip_name,
    decode_latents,
    encode_latents,
    encode_record,
)
from sentiric_tts.voices.library_recovery import DELETING_PREFIX, STAGING_PREFIX, Recovery, open_library
from sentiric_tts.voices.library_rules import (
    MetadataEdit,
    first_or_named,
    has_name,
    id_taken,
    imported_voice,
    library_full,
    name_taken,
    new_voice,
    sample_missing,
    sample_not_found,
    storage_full,
    voice_not_found,
    with_samples,
    without_sample,
)

log = logging.getLogger(__name__)

_PREVIOUS_RECORD = f".{RECORD_NAME}.previous.part"


class LibraryStore:
    """Persistent library voices. Thread-safe; ids from outside are checked before any path use.

    The store does not filter by owner: LibraryService (library_service.py) shows each caller its
    own voices; here, names are unique per owner and every voice is reachable by id."""

    def __init__(self, directory: Path, max_voices: int) -> None:
        self.directory = directory
        self.max_voices = max_voices
        self._lock = threading.RLock()
        # Listing is asked for on every synthesis request (voice resolution): keep the rows in
        # memory and reload only after this store wrote.
        self._snapshot: tuple[LibraryVoice, ...] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self._index = LibraryIndex(directory)
        with self._lock:
            # What opening found and did: rows recovered, leftovers swept, clips missing ...
            self.recovery: Recovery = open_library(directory, self._index)

    def close(self) -> None:
        self._index.close()

    # --- plumbing ---

    @contextmanager
    def _change(self) -> Iterator[Transaction]:
        """One change under the lock; a full disk becomes a 507 once the change is undone."""
        with self._lock:
            try:
                with self._index.transaction() as change:
                    yield change
            except Exception as exc:
                if is_disk_full(exc):
                    log.warning("Voice library: a change was refused, the disk is full (%s)", exc)
                    raise storage_full() from exc
                raise
            finally:
                self._snapshot = None

    def _voice_dir(self, voice_id: str) -> Path:
        if not VOICE_ID.fullmatch(voice_id):  # never build a path from an unchecked id
            raise voice_not_found(voice_id)
        return self.directory / voice_id

    def _sample_path(self, voice_id: str, sample_id: str) -> Path:
        if not SAMPLE_ID.fullmatch(sample_id):
            raise sample_not_found(voice_id, sample_id)
        return self._voice_dir(voice_id) / clip_name(sample_id)

    def _current(self, change: Transaction, voice_id: str) -> LibraryVoice:
        self._voice_dir(voice_id)
        voice = self._index.get(change.db, voice_id)
        if voice is None:
            raise voice_not_found(voice_id)
        return voice

    def _replace_record(self, change: Transaction, voice: LibraryVoice) -> None:
        """Put the voice's new voice.json in place: the step that makes an edit happen."""
        folder = self._voice_dir(voice.id)
        record, previous = folder / RECORD_NAME, folder / _PREVIOUS_RECORD
        fresh = write_temporary(folder, encode_record(voice), RECORD_NAME)
        change.on_failure(lambda: fresh.unlink(missing_ok=True))
        # The old voice.json is kept under another name until the commit, so that a failed
        # commit can put it back without writing (a full disk could refuse a write).
        if record.exists():
            os.replace(record, previous)
            change.on_failure(lambda: os.replace(previous, record))
        else:
            change.on_failure(lambda: record.unlink(missing_ok=True))
        os.replace(fresh, record)
        sync_directory(folder)
        change.after_commit(lambda: previous.unlink(missing_ok=True))

    @staticmethod
    def _stage_latents(change: Transaction, folder: Path, latents: Latents) -> None:
        """Latents written now and renamed in after the commit (a stale latents.bin left by a
        crash between the two is recognised by its header and recomputed)."""
        staged = write_temporary(folder, encode_latents(latents), LATENTS_NAME)
        change.on_failure(lambda: staged.unlink(missing_ok=True))
        change.after_commit(lambda: os.replace(staged, folder / LATENTS_NAME))

    # --- reading ---

    def list(self) -> tuple[LibraryVoice, ...]:
        """Every voice, whoever owns it, in creation order."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._index.load_all()
            return self._snapshot

    def get(self, voice_id: str) -> LibraryVoice:
        """The voice with this id; RequestError 404 when there is none."""
        for voice in self.list():
            if voice.id == voice_id:
                return voice
        raise voice_not_found(voice_id)

    def has_name(self, name: str, owner: str | None) -> bool:
        return has_name(self.list(), name, owner)

    def _clip(self, voice: LibraryVoice, sample: LibrarySample) -> tuple[str, bytes]:
        try:
            return sample.filename, self._sample_path(voice.id, sample.id).read_bytes()
        except FileNotFoundError:
            raise sample_missing(voice.id, sample.id) from None

    def sample_files(self, voice_id: str, leave_out: str | None = None) -> list[tuple[str, bytes]]:
        """The voice's stored clips as (file name, uploaded bytes), in order, but `leave_out`;
        RequestError 409 when one of them is missing from the folder."""
        voice = self.get(voice_id)
        return [self._clip(voice, s) for s in voice.samples if s.id != leave_out]

    def sample_file(self, voice_id: str, sample_id: str | None) -> tuple[str, bytes]:
        """One stored clip (default: the first) as (file name, uploaded bytes)."""
        voice = self.get(voice_id)
        return self._clip(voice, first_or_named(voice, sample_id))

    def latents(self, voice_id: str, model: str) -> bytes | None:
        """Stored conditioning when it was made by `model` from the voice's current clips; None
        when it is missing, stale or damaged (then it is recomputed from the clips)."""
        with self._lock:
            voice = self.get(voice_id)
            path = self._voice_dir(voice_id) / LATENTS_NAME
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                log.warning("Voice %s: cannot read its latents (%s); recomputing them", voice_id, exc)
                return None
        stored = decode_latents(data)
        if stored is None:
            log.warning("Voice %s: its latents.bin is damaged; recomputing it from the clips", voice_id)
            return None
        if stored.model != model or stored.reference_digest != voice.reference_digest:
            return None
        return stored.data

    # --- writing ---

    def create(
        self,
        name: str,
        language: str | None,
        description: str,
        samples: Sequence[NewSample],
        latents: Latents,
        reserved_names: Sequence[str] = (),
        owner: str | None = None,
    ) -> LibraryVoice:
        """Store a new voice; RequestError 409 when its owner has the name or the library is full,
        507 when the disk is."""
        voice = new_voice(name, language, description, samples, latents, reserved_names, owner)
        with self._change() as change:
            if self._index.count(change.db) >= self.max_voices:
                raise library_full(self.max_voices)
            self._insert(change, voice, [s.data for s in samples], latents)
        return self.get(voice.id)

    def import_voice(
        self,
        voice: LibraryVoice,
        clips: Sequence[bytes],
        latents: Latents | None,
        replacing: str | None = None,
    ) -> LibraryVoice:
        """Keep a voice made elsewhere as it is: its ids, owner, times and reference digest (a
        library moved between stores, library_copy.py). `clips`: its samples' bytes, in order;
        `latents`: its conditioning, kept when made from those clips. `replacing`: a voice removed
        in the same change. 409 when the owner has the name, an id is taken or the library is full.
        With `replacing`, a crash before the commit can lose the replaced voice, as a crashed delete
        does (its folder was renamed out first); PostgreSQL's import is one transaction."""
        latents = imported_voice(voice, clips, latents)
        with self._change() as change:
            if replacing is not None:
                self._remove(change, replacing)
            present = self._index.load_all(change.db)
            taken = {v.id for v in present} | {s.id for v in present for s in v.samples}
            if voice.id in taken or any(s.id in taken for s in voice.samples):
                raise id_taken(voice.id)
            if len(present) >= self.max_voices:
                raise library_full(self.max_voices)
            self._insert(change, voice, clips, latents)
        return self.get(voice.id)

    def _insert(
        self, change: Transaction, voice: LibraryVoice, clips: Sequence[bytes], latents: Latents | None
    ) -> None:
        """A new voice's rows and folder, in one change: the folder is built under a staging name
        and renamed in whole."""
        staging = self.directory / f"{STAGING_PREFIX}{voice.id}"
        final = self.directory / voice.id
        try:
            self._index.put(change.db, voice)
        except sqlite3.IntegrityError as exc:  # the unique index settles concurrent creates
            raise name_taken(voice.name) from exc
        change.on_failure(lambda: shutil.rmtree(staging, ignore_errors=True))
        staging.mkdir()
        for sample, data in zip(voice.samples, clips, strict=True):
            write_atomically(staging / clip_name(sample.id), data)
        if latents is not None:
            write_atomically(staging / LATENTS_NAME, encode_latents(latents))
        write_atomically(staging / RECORD_NAME, encode_record(voice))
        os.replace(staging, final)  # the voice exists from here on: whole, with its voice.json
        # Undone by renaming it back to its staging name (removed by the undo above, or swept at
        # start should a crash come first): never half a voice under a voice's name.
        change.on_failure(lambda: os.replace(final, staging))
        sync_directory(self.directory)

    def update(
        self,
        voice_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        language: str | None = None,
        clear_language: bool = False,
        reserved_names: Sequence[str] = (),
    ) -> LibraryVoice:
        """Change a voice's metadata; fields left None stay as they are."""
        self._voice_dir(voice_id)
        edit = MetadataEdit.checked(
            name=name,
            description=description,
            language=language,
            clear_language=clear_language,
            reserved_names=reserved_names,
        )
        with self._change() as change:
            changed = edit.applied(self._current(change, voice_id))
            try:
                self._index.put(change.db, changed)
            except sqlite3.IntegrityError as exc:
                raise name_taken(changed.name) from exc
            self._replace_record(change, changed)
        return self.get(voice_id)

    def delete(self, voice_id: str) -> None:
        with self._change() as change:
            self._remove(change, voice_id)

    def _remove(self, change: Transaction, voice_id: str) -> None:
        folder = self._voice_dir(voice_id)
        doomed = folder.with_name(f"{DELETING_PREFIX}{voice_id}")
        if not self._index.delete(change.db, voice_id):
            raise voice_not_found(voice_id)
        if folder.is_dir():
            os.replace(folder, doomed)  # the voice is gone from here on
            change.on_failure(lambda: os.replace(doomed, folder))
            change.after_commit(lambda: shutil.rmtree(doomed, ignore_errors=True))

    def add_samples(self, voice_id: str, samples: Sequence[NewSample], latents: Latents) -> LibraryVoice:
        """Append clips; `latents` are the conditioning of all clips, old and new."""
        folder = self._voice_dir(voice_id)
        with self._change() as change:
            current = self._current(change, voice_id)
            changed = with_samples(current, samples, latents)
            added = changed.samples[len(current.samples) :]
            self._index.put(change.db, changed)
            for sample, new in zip(added, samples, strict=True):
                path = folder / clip_name(sample.id)
                change.on_failure(lambda path=path: path.unlink(missing_ok=True))
                write_atomically(path, new.data)
            self._stage_latents(change, folder, latents)
            self._replace_record(change, changed)
        return self.get(voice_id)

    def remove_sample(self, voice_id: str, sample_id: str, latents: Latents) -> LibraryVoice:
        """Drop one clip; `latents` are the conditioning of the clips that remain."""
        path = self._sample_path(voice_id, sample_id)
        with self._change() as change:
            changed = without_sample(self._current(change, voice_id), sample_id, latents)
            self._index.put(change.db, changed)
            self._stage_latents(change, path.parent, latents)
            self._replace_record(change, changed)
            change.after_commit(lambda: path.unlink(missing_ok=True))
        return self.get(voice_id)

    def store_latents(self, voice_id: str, latents: Latents) -> bool:
        """Keep recomputed conditioning; False (nothing kept) when the voice's clips changed since.
        Raises OSError when it cannot be written: the conditioning is optional, callers go on."""
        with self._lock:
            voice = next((v for v in self.list() if v.id == voice_id), None)
            if voice is None or voice.reference_digest != latents.reference_digest:
                return False
            write_atomically(self._voice_dir(voice_id) / LATENTS_NAME, encode_latents(latents))
            return True
