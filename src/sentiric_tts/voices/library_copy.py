"""Moving voices from one library into another store: what `sentiric-tts library copy` does
(library_command.py reads its arguments and opens both sides).

Each voice goes over whole through the target store's `import_voice` (voice_store.py), so the
target's rules hold (unique names per owner, the voice limit, one transaction per voice) and the
voice keeps its id, its samples' ids, owner and times: clients' ids keep working after the move.
Its latents go with it when they were made from its clips, so nothing is recomputed.

A copy can run again: a voice the target already has (same owner, same clips, and the same id or
name) is skipped; one that collides with a different voice there (its id, or its owner's name) is
a conflict, left alone unless `replace` is asked. The source is only read.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sentiric_tts.failures import RequestError
from sentiric_tts.voices.embedded_reader import EmbeddedLibrary, VoiceUnreadable
from sentiric_tts.voices.latent_shelves import LatentShelf
from sentiric_tts.voices.library_records import LibraryVoice
from sentiric_tts.voices.library_rules import LibraryUnavailable, name_key
from sentiric_tts.voices.voice_store import VoiceStore

_CACHE_ENTRY = re.compile(r"([0-9a-f]{64})\.latents")
"""A latent cache file (latent_shelves.FileShelf): its name is its key."""


class Outcome(enum.Enum):
    COPIED = "copied"
    REPLACED = "replaced"
    SKIPPED = "skipped"
    CONFLICT = "conflict"
    FAILED = "failed"


@dataclass(frozen=True)
class VoiceResult:
    outcome: Outcome
    voice_id: str
    name: str
    owner: str | None
    detail: str = ""

    def line(self, dry_run: bool) -> str:
        verb = self.outcome.value
        if dry_run and self.outcome in (Outcome.COPIED, Outcome.REPLACED):
            verb = f"would be {verb}"
        owner = f"owner {self.owner[:8]}" if self.owner else "no owner"
        name = f" '{self.name}'" if self.name else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{verb:<18} {self.voice_id}{name} ({owner}){detail}"


@dataclass
class CopyReport:
    results: list[VoiceResult] = field(default_factory=list)
    cache_copied: int = 0
    cache_present: int = 0
    cache_failed: int = 0
    stopped: str | None = None
    """Why copying stopped before the last voice (the target went away)."""

    def count(self, outcome: Outcome) -> int:
        return sum(1 for result in self.results if result.outcome is outcome)

    @property
    def complete(self) -> bool:
        """Every voice is in the target (copied now or before) and every cache entry too."""
        bad = self.count(Outcome.CONFLICT) + self.count(Outcome.FAILED) + self.cache_failed
        return bad == 0 and self.stopped is None

    def summary(self, dry_run: bool) -> str:
        copied = "would be copied" if dry_run else "copied"
        parts = [
            f"{self.count(Outcome.COPIED)} {copied}",
            f"{self.count(Outcome.REPLACED)} {'would be ' if dry_run else ''}replaced",
            f"{self.count(Outcome.SKIPPED)} skipped (already there)",
            f"{self.count(Outcome.CONFLICT)} conflict(s)",
            f"{self.count(Outcome.FAILED)} failed",
        ]
        line = f"Voices: {', '.join(parts)}."
        cache = self.cache_copied + self.cache_present + self.cache_failed
        if cache:
            line += (
                f" Latent cache: {self.cache_copied} entr{'y' if self.cache_copied == 1 else 'ies'} "
                f"{copied}, {self.cache_present} already there, {self.cache_failed} failed."
            )
        return line


class TargetView(Protocol):
    """What planning reads of the target: a VoiceStore, or nothing at all (a dry run on a
    database that has no library yet)."""

    def list(self) -> tuple[LibraryVoice, ...]: ...

    def sample_files(self, voice_id: str, leave_out: str | None = None) -> list[tuple[str, bytes]]: ...


class EmptyTarget:
    def list(self) -> tuple[LibraryVoice, ...]:
        return ()

    def sample_files(self, voice_id: str, leave_out: str | None = None) -> list[tuple[str, bytes]]:
        return []


@dataclass(frozen=True)
class _Plan:
    outcome: Outcome
    detail: str = ""
    replacing: str | None = None


def _plan(voice: LibraryVoice, clips: Sequence[bytes], target: TargetView, replace: bool) -> _Plan:
    present = target.list()
    same_id = next((v for v in present if v.id == voice.id), None)
    same_name = next(
        (v for v in present if v.owner == voice.owner and name_key(v.name) == name_key(voice.name)), None
    )
    if same_id is None and same_name is None:
        return _Plan(Outcome.COPIED)
    if same_id is not None and same_name is not None and same_id is not same_name:
        return _Plan(
            Outcome.CONFLICT,
            f"the target's voice {same_id.id} has this id and its voice {same_name.id} this name; "
            "not copied (--replace cannot settle two voices)",
        )
    there = same_id or same_name
    assert there is not None
    same_clips = there.owner == voice.owner and [data for _, data in target.sample_files(there.id)] == list(
        clips
    )
    if same_clips:
        elsewhere = "" if there.id == voice.id else f" as {there.id}"
        renamed = "" if there.name == voice.name else f", named '{there.name}' there"
        return _Plan(Outcome.SKIPPED, f"already there{elsewhere}{renamed}")
    if there is same_id:
        what = f"the target's voice of this id ('{there.name}') is another voice, or has other clips"
    else:
        what = f"the target's voice of this name and owner ({there.id}) has other clips"
    if replace:
        return _Plan(Outcome.REPLACED, f"in place of {there.id}: {what}", replacing=there.id)
    return _Plan(Outcome.CONFLICT, f"{what}; left as it is (--replace overwrites it)")


def copy_voices(
    source: EmbeddedLibrary,
    target: TargetView,
    *,
    replace: bool = False,
    dry_run: bool = False,
    report: CopyReport | None = None,
    on_result: Callable[[VoiceResult], None] = lambda _: None,
) -> CopyReport:
    """Copy every voice of `source` into `target` (a VoiceStore unless `dry_run`), in creation
    order; each result is passed to `on_result` as it comes."""
    report = report if report is not None else CopyReport()

    def record(result: VoiceResult) -> None:
        report.results.append(result)
        on_result(result)

    voices, unreadable = source.voices()
    for folder in unreadable:
        record(VoiceResult(Outcome.FAILED, folder.folder, "", None, folder.reason))
    for index, listed in enumerate(voices):
        try:
            read = source.read(listed)
            voice = read.voice
            plan = _plan(voice, read.clips, target, replace)
            if not dry_run and plan.outcome in (Outcome.COPIED, Outcome.REPLACED):
                store: VoiceStore = target  # type: ignore[assignment]  # only a dry run has no store
                store.import_voice(voice, read.clips, read.latents, replacing=plan.replacing)
            latents = (
                " with its latents" if read.latents is not None else " (no latents: computed on first use)"
            )
            detail = plan.detail
            if plan.outcome in (Outcome.COPIED, Outcome.REPLACED):
                detail = f"{len(read.clips)} clip(s){latents}" + (f"; {detail}" if detail else "")
            record(VoiceResult(plan.outcome, voice.id, voice.name, voice.owner, detail))
        except VoiceUnreadable as exc:
            record(VoiceResult(Outcome.FAILED, listed.id, listed.name, listed.owner, str(exc)))
        except LibraryUnavailable:
            record(
                VoiceResult(
                    Outcome.FAILED, listed.id, listed.name, listed.owner, "the target cannot be reached"
                )
            )
            report.stopped = f"the target could not be reached; {len(voices) - index - 1} voice(s) not tried"
            break
        except RequestError as exc:  # the target's rules: a full library, a name or id taken ...
            record(VoiceResult(Outcome.FAILED, listed.id, listed.name, listed.owner, exc.message))
    return report


def copy_cache(directory: Path, shelf: LatentShelf | None, report: CopyReport, *, dry_run: bool) -> None:
    """Copy the latent cache's files (latent_shelves.FileShelf) onto `shelf`: conditioning
    computed for one-off clones is found there rather than computed again. Keys name what the
    bytes were made from, so an entry already there is the same. `shelf` None: the target has
    no cache yet (a dry run), so every entry would be copied."""
    if not directory.is_dir():
        return
    for path in sorted(directory.iterdir()):
        match = _CACHE_ENTRY.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        key = match.group(1)
        try:
            if shelf is not None and shelf.read(key) is not None:
                report.cache_present += 1
                continue
            if not dry_run and shelf is not None:
                shelf.write(key, path.read_bytes())
            report.cache_copied += 1
        except (OSError, LibraryUnavailable):
            report.cache_failed += 1
