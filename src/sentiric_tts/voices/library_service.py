"""Library voices as the service uses them: created and edited from reference clips, and turned
into engine conditioning for synthesis.

The store (voice_store.py: folders and SQLite, or PostgreSQL) keeps clips and serialised
latents; this module decodes and checks clips, computes latents on the engine's worker and decides when stored latents are still valid. Latents
carry the model they were made with: after a model change (or when they are damaged) the first
request that names a voice recomputes them from its stored clips, then stores them again.

Every call from a door names the caller's LibraryAccess (access.py): a voice the caller may not
see is answered exactly like one that does not exist, so ids and names cannot be probed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence

import anyio

from sentiric_tts.audio.reference import ReferenceAudio, ReferenceLimits, load_references
from sentiric_tts.engines.base import CloningEngine, Engine, VoiceInfo
from sentiric_tts.failures import Failure, RequestError
from sentiric_tts.synthesis.scheduler import EngineScheduler
from sentiric_tts.voices.access import LibraryAccess
from sentiric_tts.voices.cloning import conditioning_from, model_tag, require_cloning_engine
from sentiric_tts.voices.latent_cache import LatentCache
from sentiric_tts.voices.library_records import Latents, LibraryVoice, NewSample
from sentiric_tts.voices.library_rules import (
    LibraryUnavailable,
    clean_description,
    clean_name,
    last_sample,
    name_key,
    name_taken,
    sample_not_found,
    voice_not_found,
)
from sentiric_tts.voices.voice_store import VoiceStore

log = logging.getLogger(__name__)

_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")


class LibraryService:
    """The voice library as callers use it (per-caller visibility, editing, conditioning) over
    its store (any VoiceStore)."""

    def __init__(
        self,
        store: VoiceStore,
        engine: Engine,
        scheduler: EngineScheduler,
        latent_cache: LatentCache,
        reference_limits: ReferenceLimits,
        memory_entries: int,
    ) -> None:
        self.store = store
        self.engine = engine
        self.scheduler = scheduler
        self.latent_cache = latent_cache
        self.reference_limits = reference_limits
        self._memory_entries = memory_entries
        # voice id -> (reference digest, model tag, conditioning): loaded latents, most recent last.
        self._memory: OrderedDict[str, tuple[str, str, object]] = OrderedDict()
        # One edit of a voice's clips at a time, so two concurrent edits cannot lose a clip.
        self._edit_locks: dict[str, asyncio.Lock] = {}
        self.recomputed = 0
        """Latents recomputed from stored clips because the model changed (or they were lost)."""

    # --- catalogue ---

    @property
    def usable(self) -> bool:
        """Whether the running engine can speak library voices (only a cloning engine can)."""
        return self.engine.supports_cloning and isinstance(self.engine, CloningEngine)

    def info(self, voice: LibraryVoice) -> VoiceInfo:
        return VoiceInfo(voice.id, voice.name, "library", tuple(self.engine.languages()), voice.description)

    def visible(self, access: LibraryAccess) -> list[LibraryVoice]:
        """The voices this caller may see, in creation order."""
        return [voice for voice in self.store.list() if access.sees(voice.owner)]

    def infos(self, access: LibraryAccess) -> list[VoiceInfo]:
        """The visible voices for synthesis, the caller's own first: where an admin sees two
        voices of one name, the name is its own voice's, as in `find`."""
        visible = self.visible(access)
        return [self.info(voice) for voice in sorted(visible, key=lambda v: v.owner != access.owner)]

    def get(self, voice_id: str, access: LibraryAccess) -> LibraryVoice:
        """The voice with this id; 404 when there is none or the caller may not see it."""
        voice = next((v for v in self.visible(access) if v.id == voice_id), None)
        if voice is None:
            raise voice_not_found(voice_id)
        return voice

    def find(self, wanted: str, access: LibraryAccess) -> LibraryVoice | None:
        """A visible voice by id, else by name (case-insensitive; the caller's own voices first)."""
        visible = self.visible(access)
        key = wanted.strip()
        by_id = next((v for v in visible if v.id == key), None)
        if by_id is not None:
            return by_id
        named = [v for v in visible if name_key(v.name) == name_key(key)]
        return next((v for v in named if v.owner == access.owner), named[0] if named else None)

    def sample_file(self, voice_id: str, sample_id: str | None, access: LibraryAccess) -> tuple[str, bytes]:
        self.get(voice_id, access)
        return self.store.sample_file(voice_id, sample_id)

    def _builtin_names(self) -> list[str]:
        return [name for info in self.engine.voices() for name in (info.id, info.name)]

    def check_language(self, language: str | None) -> str | None:
        """A voice's preferred language as stored (None: the service default)."""
        if language is None or not language.strip():
            return None
        code = language.strip().lower().replace("_", "-")
        supported = self.engine.languages()
        if self.usable and code not in supported:
            raise RequestError(
                f"Language '{language}' is not one the {self.engine.name} engine speaks. "
                f"Available: {', '.join(supported)}.",
                param="language",
                code="unsupported_language",
                allowed=supported,
            )
        if not _LANGUAGE_CODE.fullmatch(code):
            raise RequestError(
                f"'{language}' is not a language code (e.g. en, de, pt-br).",
                param="language",
                code="invalid_language",
            )
        return code

    # --- editing ---

    async def _references(self, files: Sequence[tuple[str, bytes]], stored: int = 0) -> ReferenceAudio:
        limits = self.reference_limits
        if stored:
            # Clips already in the library passed the limits when they came in: only new ones
            # count against the byte limit, and the file limit is per voice.
            limits = dataclasses.replace(
                limits,
                max_files=max(limits.max_files, len(files)),
                max_file_bytes=max(limits.max_file_bytes, *(len(data) for _, data in files)),
            )
        return await anyio.to_thread.run_sync(load_references, list(files), limits)

    async def _latents(self, engine: CloningEngine, references: ReferenceAudio) -> tuple[object, Latents]:
        conditioning = await conditioning_from(references, engine, self.scheduler, self.latent_cache)
        data = await anyio.to_thread.run_sync(engine.dump_conditioning, conditioning)
        return conditioning, Latents(model_tag(engine), references.digest, data)

    def _remember(self, voice_id: str, digest: str, model: str, conditioning: object) -> None:
        self._memory[voice_id] = (digest, model, conditioning)
        self._memory.move_to_end(voice_id)
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)

    @staticmethod
    def _new_samples(files: Sequence[tuple[str, bytes]], references: ReferenceAudio) -> list[NewSample]:
        clips = references.clips[-len(files) :]  # the new clips come last
        return [
            NewSample(filename=name[:255], data=data, seconds=round(len(clip) / references.sample_rate, 3))
            for (name, data), clip in zip(files, clips, strict=True)
        ]

    async def create(
        self,
        name: str,
        language: str | None,
        description: str,
        files: Sequence[tuple[str, bytes]],
        access: LibraryAccess,
    ) -> LibraryVoice:
        """Validate, clone and store a voice owned by the caller; RequestError says what is wrong."""
        name, description, language = (
            clean_name(name),
            clean_description(description),
            self.check_language(language),
        )
        engine = require_cloning_engine(self.engine)
        reserved = self._builtin_names()
        # Fail fast on a taken name, before the clips cost any work (the store checks again).
        if self.store.has_name(name, access.owner) or name_key(name) in {name_key(n) for n in reserved}:
            raise name_taken(name)
        references = await self._references(files)
        conditioning, latents = await self._latents(engine, references)
        voice = await anyio.to_thread.run_sync(
            lambda: self.store.create(
                name,
                language,
                description,
                self._new_samples(files, references),
                latents,
                reserved,
                owner=access.owner,
            )
        )
        self._remember(voice.id, latents.reference_digest, latents.model, conditioning)
        log.info("Library voice %s (%s) created from %d clip(s)", voice.id, voice.name, len(files))
        return voice

    def update(
        self,
        voice_id: str,
        access: LibraryAccess,
        *,
        name: str | None,
        description: str | None,
        language: str | None,
        set_language: bool,
    ) -> LibraryVoice:
        self.get(voice_id, access)
        checked = self.check_language(language) if set_language else None
        return self.store.update(
            voice_id,
            name=name,
            description=description,
            language=checked,
            clear_language=set_language and checked is None,
            reserved_names=self._builtin_names() if name is not None else (),
        )

    def delete(self, voice_id: str, access: LibraryAccess) -> None:
        self.get(voice_id, access)
        self.store.delete(voice_id)
        self._memory.pop(voice_id, None)

    def _edit_lock(self, voice_id: str) -> asyncio.Lock:
        return self._edit_locks.setdefault(voice_id, asyncio.Lock())

    async def add_samples(
        self, voice_id: str, files: Sequence[tuple[str, bytes]], access: LibraryAccess
    ) -> LibraryVoice:
        self.get(voice_id, access)  # 404 before anything else
        engine = require_cloning_engine(self.engine)
        async with self._edit_lock(voice_id):
            stored = await anyio.to_thread.run_sync(self.store.sample_files, voice_id)
            if not files:
                raise RequestError("Send at least one clip to add.", param="files", code="missing_reference")
            most = self.reference_limits.max_files
            if len(stored) + len(files) > most:
                raise RequestError(
                    f"Voice '{voice_id}' has {len(stored)} sample(s); adding {len(files)} would pass the "
                    f"limit of {most} per voice. Remove a sample first.",
                    param="files",
                    code="too_many_references",
                )
            for name, data in files:  # the byte limit applies to new clips whatever is stored
                if len(data) > self.reference_limits.max_file_bytes:
                    raise RequestError(
                        f"Reference '{name}' is {len(data)} bytes; the limit is "
                        f"{self.reference_limits.max_file_bytes}.",
                        param="files",
                        code="reference_too_large",
                        kind=Failure.TOO_LARGE,
                    )
            references = await self._references([*stored, *files], stored=len(stored))
            conditioning, latents = await self._latents(engine, references)
            voice = await anyio.to_thread.run_sync(
                self.store.add_samples, voice_id, self._new_samples(files, references), latents
            )
            self._remember(voice_id, latents.reference_digest, latents.model, conditioning)
            return voice

    async def remove_sample(self, voice_id: str, sample_id: str, access: LibraryAccess) -> LibraryVoice:
        self.get(voice_id, access)
        engine = require_cloning_engine(self.engine, param="sample_id")
        async with self._edit_lock(voice_id):
            voice = self.get(voice_id, access)
            if sample_id not in {s.id for s in voice.samples}:
                raise sample_not_found(voice_id, sample_id)  # before any work
            if len(voice.samples) == 1:
                raise last_sample(voice_id)
            # The removed clip is not read: removing a sample whose file is lost must work.
            kept = await anyio.to_thread.run_sync(self.store.sample_files, voice_id, sample_id)
            references = await self._references(kept, stored=len(kept))
            conditioning, latents = await self._latents(engine, references)
            voice = await anyio.to_thread.run_sync(self.store.remove_sample, voice_id, sample_id, latents)
            self._remember(voice_id, latents.reference_digest, latents.model, conditioning)
            return voice

    # --- synthesis ---

    async def conditioning(self, voice_id: str) -> object:
        """The engine conditioning of a library voice: from memory, from the library, or (after a
        model change, or when the stored latents are damaged) recomputed from its stored clips on
        the engine's worker. `voice_id` was resolved for the caller already."""
        engine = require_cloning_engine(self.engine, param="voice")
        voice = self.store.get(voice_id)
        model = model_tag(engine)
        remembered = self._memory.get(voice_id)
        if remembered is not None and remembered[:2] == (voice.reference_digest, model):
            self._memory.move_to_end(voice_id)
            return remembered[2]
        data = await anyio.to_thread.run_sync(self.store.latents, voice_id, model)
        if data is not None:
            try:
                conditioning = await anyio.to_thread.run_sync(engine.load_conditioning, data)
            except Exception as exc:  # intact bytes the engine cannot load: recomputed below
                log.warning("Library voice %s: its stored latents do not load (%s)", voice_id, exc)
            else:
                self._remember(voice_id, voice.reference_digest, model, conditioning)
                return conditioning
        log.info("Recomputing the latents of library voice %s for model %s", voice_id, model)
        stored = await anyio.to_thread.run_sync(self.store.sample_files, voice_id)
        references = await self._references(stored, stored=len(stored))
        conditioning, latents = await self._latents(engine, references)
        self.recomputed += 1
        # Tagged with the voice as it was read before its clips: should they change meanwhile,
        # the store refuses these latents and the memory entry never matches again.
        own = dataclasses.replace(latents, reference_digest=voice.reference_digest)
        try:
            await anyio.to_thread.run_sync(self.store.store_latents, voice_id, own)
        except (OSError, LibraryUnavailable) as exc:  # e.g. a full disk: this request goes on
            log.warning("Library voice %s: recomputed latents not stored (%s)", voice_id, exc)
        self._remember(voice_id, voice.reference_digest, model, conditioning)
        return conditioning
