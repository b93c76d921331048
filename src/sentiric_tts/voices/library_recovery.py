"""Opening the voice library: its database checked and upgraded, then brought in line with the
voice folders, which never loses a voice.

What is authoritative:
- A voice is its folder `v_<id>` with a readable voice.json (library_records.py). Every change
  takes effect in one step that cannot half happen: a create renames its staging folder in, a
  delete renames the folder out, an edit replaces voice.json.
- The database is an index of those folders, brought in line here: a row that differs from its
  voice.json is rewritten, a folder without a row gets one (a create killed after its rename),
  a row without a folder is dropped (a delete killed before its commit). The rows also back the
  folders up: a voice.json that is missing or damaged is written again from its row.
- Clips are the files voice.json names. latents.bin is derived: checked against its own header
  on every use and recomputed from the clips when stale or damaged.

Only true leftovers of interrupted writes are swept: staging folders (`.tmp-v_*`), folders being
deleted (`.del-v_*`), temporary files (`.*.part`) and clips no voice.json names. A folder with
neither a readable voice.json nor a row is kept as it is, and named in the log.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sentiric_tts.voices.durable_files import is_disk_full, is_temporary, write_atomically
from sentiric_tts.voices.library_index import LegacyVoice, LibraryIndex
from sentiric_tts.voices.library_records import (
    CLIP_SUFFIX,
    LATENTS_NAME,
    NAME_MAX_CHARS,
    RECORD_NAME,
    SAMPLE_ID,
    VOICE_ID,
    Latents,
    LibraryVoice,
    clip_name,
    decode_record,
    encode_latents,
    encode_record,
    is_encoded_latents,
)

log = logging.getLogger(__name__)

STAGING_PREFIX = ".tmp-"
"""A create in progress: `.tmp-v_<id>`, renamed to `v_<id>` when the voice is whole."""
DELETING_PREFIX = ".del-"
"""A delete in progress: `v_<id>` renamed to `.del-v_<id>`, removed once the row is gone."""


@dataclass
class Recovery:
    """What opening the library found and did; logged in one line."""

    voices: int = 0
    moved_aside: Path | None = None
    upgraded: int = 0
    """voice.json written for the voices of a database from an older version."""
    rows_written: int = 0
    """Index rows written from voice folders (all of them after a lost or damaged database)."""
    rows_dropped: int = 0
    records_restored: int = 0
    """voice.json files written again from their rows (they were missing or damaged)."""
    renamed: list[str] = field(default_factory=list)
    leftovers: int = 0
    missing_clips: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def eventful(self) -> bool:
        return any(
            (
                self.moved_aside,
                self.upgraded,
                self.rows_written,
                self.rows_dropped,
                self.records_restored,
                self.renamed,
                self.leftovers,
                self.missing_clips,
                self.unreadable,
            )
        )

    def line(self, directory: Path) -> str:
        parts = [f"Voice library {directory}: {self.voices} voice(s)"]
        if self.upgraded:
            parts.append(f"upgraded {self.upgraded} voice folder(s) to carry their own voice.json")
        if self.rows_written:
            parts.append(f"indexed {self.rows_written} voice(s) from their folders")
        if self.rows_dropped:
            parts.append(f"dropped {self.rows_dropped} index row(s) whose folder is gone")
        if self.records_restored:
            parts.append(f"rewrote {self.records_restored} missing or damaged voice.json from the index")
        if self.renamed:
            parts.append(
                f"renamed {len(self.renamed)} voice(s) whose name clashed ({', '.join(self.renamed)})"
            )
        if self.leftovers:
            parts.append(f"removed {self.leftovers} leftover(s) of interrupted writes")
        if self.missing_clips:
            parts.append(
                f"{len(self.missing_clips)} clip file(s) missing ({', '.join(self.missing_clips[:5])}): "
                "remove those samples or restore the files"
            )
        if self.unreadable:
            parts.append(
                f"kept {len(self.unreadable)} folder(s) with no readable voice.json and no index row, "
                f"not listed ({', '.join(self.unreadable[:5])})"
            )
        return "; ".join(parts)


def open_library(directory: Path, index: LibraryIndex) -> Recovery:
    """Check (and if damaged, replace) the database, upgrade an older one, and bring the index in
    line with the voice folders; logs one line when anything needed doing."""
    report = Recovery(moved_aside=index.open())
    legacy = index.legacy_voices()
    if legacy is not None:
        # voice.json first, for every voice: until the new schema is in place, the old rows stay
        # and an interrupted upgrade simply runs again at the next start.
        report.upgraded = sum(_upgrade(directory, old) for old in legacy)
        index.create_schema()
    try:
        with index.transaction() as change:
            _reconcile(directory, index, change.db, report)
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        # The service starts all the same, on the index as it was; the next start tries again.
        log.error("Voice library %s: cannot check it against its folders, the disk is full", directory)
        return report
    line = report.line(directory)
    if report.eventful:
        log.warning(line)
    else:
        log.info(line)
    return report


def _upgrade(directory: Path, old: LegacyVoice) -> bool:
    folder = directory / old.voice.id
    if not VOICE_ID.fullmatch(old.voice.id) or not folder.is_dir() or not old.voice.samples:
        return False  # no clips to keep: the row goes with the old schema
    write_atomically(folder / RECORD_NAME, encode_record(old.voice))
    latents = folder / LATENTS_NAME
    if latents.is_file():
        data = latents.read_bytes()
        if not is_encoded_latents(data):
            if old.latents_model and old.latents_digest:
                tagged = Latents(old.latents_model, old.latents_digest, data)
                write_atomically(latents, encode_latents(tagged))
            else:
                latents.unlink()  # untagged conditioning cannot be trusted: recomputed on use
    return True


def _read_record(folder: Path) -> LibraryVoice | None:
    try:
        voice = decode_record((folder / RECORD_NAME).read_bytes())
    except OSError:
        return None
    return voice if voice is not None and voice.id == folder.name else None


def _sweep_folder(folder: Path, voice: LibraryVoice) -> int:
    """Remove the leftovers inside a voice's folder: temporary files and clips it does not name."""
    named = {clip_name(sample.id) for sample in voice.samples}
    removed = 0
    for entry in folder.iterdir():
        name = entry.name
        unnamed_clip = name.endswith(CLIP_SUFFIX) and SAMPLE_ID.fullmatch(name.removesuffix(CLIP_SUFFIX))
        if entry.is_file() and (is_temporary(name) or (unnamed_clip and name not in named)):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def _is_unfinished(name: str) -> bool:
    for prefix in (STAGING_PREFIX, DELETING_PREFIX):
        if name.startswith(prefix) and VOICE_ID.fullmatch(name.removeprefix(prefix)):
            return True
    return False


def _reconcile(directory: Path, index: LibraryIndex, db: sqlite3.Connection, report: Recovery) -> None:
    rows = {voice.id: voice for voice in index.load_all(db)}
    found: dict[str, LibraryVoice] = {}
    for entry in sorted(directory.iterdir()):
        if not entry.is_dir():
            continue
        if _is_unfinished(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            report.leftovers += 1
            continue
        if not VOICE_ID.fullmatch(entry.name):
            continue  # not the library's (the Piper voices folder lives here too)
        voice = _read_record(entry)
        if voice is None:
            voice = rows.get(entry.name)
            if voice is None:
                report.unreadable.append(entry.name)
                continue
            write_atomically(entry / RECORD_NAME, encode_record(voice))
            report.records_restored += 1
        report.leftovers += _sweep_folder(entry, voice)
        report.missing_clips += [
            f"{voice.id}/{s.id}" for s in voice.samples if not (entry / clip_name(s.id)).is_file()
        ]
        found[voice.id] = voice
    for voice_id in sorted(rows.keys() - found.keys()):
        index.delete(db, voice_id)
        report.rows_dropped += 1
    # In creation order: when two folders claim one name, the later voice is the one renamed.
    for voice in sorted(found.values(), key=lambda v: (v.created_at, v.id)):
        if rows.get(voice.id) == voice:
            continue
        if not _index_voice(directory, index, db, voice, report):
            del found[voice.id]
            report.unreadable.append(voice.id)
            continue
        report.rows_written += 1
    report.voices = len(found)


def _index_voice(
    directory: Path, index: LibraryIndex, db: sqlite3.Connection, voice: LibraryVoice, report: Recovery
) -> bool:
    try:
        index.put(db, voice)
        return True
    except sqlite3.IntegrityError:
        pass
    suffix = f" ({voice.id})"
    renamed = dataclasses.replace(voice, name=voice.name[: NAME_MAX_CHARS - len(suffix)] + suffix)
    try:
        index.put(db, renamed)
    except sqlite3.IntegrityError:  # not the name: sample ids another voice has (a copied folder)
        index.delete(db, voice.id)
        return False
    write_atomically(directory / voice.id / RECORD_NAME, encode_record(renamed))
    report.renamed.append(voice.id)
    return True
