"""The one interface of a voice library store, whatever keeps the voices.

LibraryService and the doors use a store only through this: `LibraryStore` (library_store.py)
keeps them in folders indexed by SQLite, for one server; `PostgresLibraryStore`
(postgres_store.py) keeps them in PostgreSQL, shared by every replica of a cluster. Both build
their changes with library_rules.py, so they keep the same invariants and raise the same errors:
RequestError 404 (no such voice or sample), 409 (a name its owner has, the library full, the last
sample), 507 (storage full), and LibraryUnavailable (503) when a database cannot be reached.

The store does not filter by owner: LibraryService shows each caller its own voices; here, names
are unique per owner and every voice is reachable by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sentiric_tts.voices.library_records import Latents, LibraryVoice, NewSample


class VoiceStore(Protocol):
    max_voices: int

    # --- reading ---

    def list(self) -> tuple[LibraryVoice, ...]:
        """Every voice, whoever owns it, in creation order (asked for on every synthesis
        request: stores answer it from memory while nothing changed)."""
        ...

    def get(self, voice_id: str) -> LibraryVoice:
        """The voice with this id; RequestError 404 when there is none."""
        ...

    def has_name(self, name: str, owner: str | None) -> bool:
        """Whether this owner has a voice of this name (without regard to case)."""
        ...

    def sample_files(self, voice_id: str, leave_out: str | None = None) -> list[tuple[str, bytes]]:
        """The voice's stored clips as (file name, uploaded bytes), in order, but `leave_out`."""
        ...

    def sample_file(self, voice_id: str, sample_id: str | None) -> tuple[str, bytes]:
        """One stored clip (default: the first) as (file name, uploaded bytes)."""
        ...

    def latents(self, voice_id: str, model: str) -> bytes | None:
        """Stored conditioning when `model` made it from the voice's current clips, else None."""
        ...

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
        """Store a new voice; 409 when its owner has the name or the library is full."""
        ...

    def import_voice(
        self,
        voice: LibraryVoice,
        clips: Sequence[bytes],
        latents: Latents | None,
        replacing: str | None = None,
    ) -> LibraryVoice:
        """Keep a voice made in another library as it is: its id, its samples' ids, owner, times
        and reference digest, so that clients' ids keep working after a move (library_copy.py).
        `clips` are its samples' bytes in order; `latents` are kept when made from those clips.
        `replacing` names a voice removed in the same change. 409 when the owner has the name,
        an id is taken or the library is full; 400 when the voice breaks the library's rules."""
        ...

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
        ...

    def delete(self, voice_id: str) -> None: ...

    def add_samples(self, voice_id: str, samples: Sequence[NewSample], latents: Latents) -> LibraryVoice:
        """Append clips; `latents` are the conditioning of all clips, old and new."""
        ...

    def remove_sample(self, voice_id: str, sample_id: str, latents: Latents) -> LibraryVoice:
        """Drop one clip (never the last); `latents` are the conditioning of those that remain."""
        ...

    def store_latents(self, voice_id: str, latents: Latents) -> bool:
        """Keep recomputed conditioning; False when the voice's clips changed since. Raises
        OSError or LibraryUnavailable when it cannot be kept: callers go on without."""
        ...

    def close(self) -> None:
        """Let go of connections and files (a store is not used after)."""
        ...
