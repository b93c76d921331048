"""The voices a caller may speak with: the engine's own and the library's, resolved from what a
request names, plus voices cloned from a request's reference clips and the conditioning of
library voices."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import anyio

from sentiric_tts.audio.reference import ReferenceLimits, load_references
from sentiric_tts.engines.base import Engine, Voice, VoiceInfo
from sentiric_tts.failures import RequestError
from sentiric_tts.synthesis.request import Segment, SynthesisPlan
from sentiric_tts.synthesis.scheduler import EngineScheduler
from sentiric_tts.voices.access import LibraryAccess
from sentiric_tts.voices.cloning import conditioning_from, require_cloning_engine
from sentiric_tts.voices.latent_cache import LatentCache
from sentiric_tts.voices.library_service import LibraryService


class VoiceCatalogue:
    def __init__(
        self,
        engine: Engine,
        scheduler: EngineScheduler,
        library: LibraryService,
        latent_cache: LatentCache,
        reference_limits: ReferenceLimits,
        *,
        default_language: str,
        default_voice: str,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.library = library
        self.latent_cache = latent_cache
        self.reference_limits = reference_limits
        self.default_language = default_language
        self.default_voice = default_voice or engine.default_voice()

    # --- listing ---

    def voices(self, access: LibraryAccess) -> list[VoiceInfo]:
        """The engine's voices and the library voices `access` may see."""
        # Library voices are listed only where they can be spoken (a cloning engine).
        library = self.library.infos(access) if self.library.usable else []
        return self.engine.voices() + library

    def languages(self) -> list[str]:
        return self.engine.languages()

    def is_library_voice(self, voice_id: str, access: LibraryAccess) -> bool:
        return self.library.find(voice_id, access) is not None

    # --- resolving what a request names ---

    def resolve_voice(self, requested: str | None, access: LibraryAccess) -> tuple[Voice, VoiceInfo]:
        """The voice a request names (the default when it names none); RequestError if unknown."""
        wanted = self.default_voice if requested is None or not requested.strip() else requested.strip()
        voices = self.voices(access)
        for info in voices:
            if info.id == wanted or info.name == wanted:
                return Voice(id=info.id), info
        for info in voices:  # be forgiving about case, never about the voice itself
            if wanted.casefold() in (info.id.casefold(), info.name.casefold()):
                return Voice(id=info.id), info
        if self.is_library_voice(wanted, access):
            require_cloning_engine(self.engine, param="voice")  # a library voice, on Piper: 409
        ids = [info.id for info in voices]
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        raise RequestError(
            f"Unknown voice '{wanted}'. Available: {shown} (GET /api/speakers lists them all).",
            param="voice",
            code="unknown_voice",
            allowed=ids,
        )

    def own_language(self, voice: VoiceInfo, access: LibraryAccess) -> str | None:
        """The language a library voice was saved with (None: none, or not a library voice)."""
        if voice.kind != "library":
            return None
        found = self.library.find(voice.id, access)
        return found.language if found is not None else None

    def resolve_language(self, requested: str | None, voice: VoiceInfo) -> str:
        """The voice's language closest to `requested` (the default when None); RequestError
        when the voice has none that fits."""
        supported = list(voice.languages)
        if requested is None or not requested.strip():
            return self.default_language if self.default_language in supported else supported[0]
        code = requested.strip().lower().replace("_", "-")
        if code in supported:
            return code
        primary = code.split("-")[0]
        if primary in supported:
            return primary
        same_primary = [lang for lang in supported if lang.split("-")[0] == primary]
        if len(same_primary) == 1:
            return same_primary[0]
        raise RequestError(
            f"Language '{requested}' is not available for voice '{voice.id}' on the "
            f"{self.engine.name} engine. Available: {', '.join(supported)}.",
            param="language",
            code="unsupported_language",
            allowed=supported,
        )

    # --- conditioning ---

    def cloned_info(self, voice: Voice) -> VoiceInfo:
        """How a voice cloned for one request is described: it speaks every engine language."""
        return VoiceInfo(voice.id, voice.id, "library", tuple(self.engine.languages()))

    async def clone_voice(self, files: Sequence[tuple[str, bytes]]) -> Voice:
        """A voice conditioned on reference clips, from the latent cache when it has them."""
        engine = require_cloning_engine(self.engine)
        references = await anyio.to_thread.run_sync(load_references, list(files), self.reference_limits)
        conditioning = await conditioning_from(references, engine, self.scheduler, self.latent_cache)
        return Voice(id=f"clone-{references.digest[:12]}", conditioning=conditioning)

    async def with_library_conditioning(self, plan: SynthesisPlan, access: LibraryAccess) -> SynthesisPlan:
        """The plan with the conditioning of the library voices it names (loaded, or recomputed
        after a model change)."""
        wanted = {
            item.voice.id
            for item in plan.segments
            if item.voice.conditioning is None and self.is_library_voice(item.voice.id, access)
        }
        if not wanted:
            return plan
        voices = {
            voice_id: Voice(voice_id, await self.library.conditioning(voice_id))
            for voice_id in sorted(wanted)
        }
        items = tuple(
            dataclasses.replace(item, voice=voices[item.voice.id])
            if isinstance(item, Segment) and item.voice.id in voices and item.voice.conditioning is None
            else item
            for item in plan.items
        )
        return dataclasses.replace(plan, items=items)
