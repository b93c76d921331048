"""Which library voices a caller may see, use and change.

With API keys set, a library voice belongs to the key that created it, stored as that key's
owner hash (callers.py), never the key. A caller sees its own voices; an admin key sees every
voice, including those made while the API was open (they have no owner) and those of a key that
has since been removed. Without keys the service is open: every caller sees every voice and new
voices have no owner.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LibraryAccess:
    owner: str | None
    """The owner hash that voices this caller creates get; None on an open service."""
    sees_all: bool = False
    """Every voice, whoever created it: an admin key, or any caller of an open service."""

    def sees(self, voice_owner: str | None) -> bool:
        return self.sees_all or (voice_owner is not None and voice_owner == self.owner)


OPEN_ACCESS = LibraryAccess(owner=None, sees_all=True)
"""An open service's callers, and the service's own work (CLI, start-up calibration)."""

NO_ACCESS = LibraryAccess(owner=None, sees_all=False)
"""A caller no key identifies on a keyed service (the doors refuse it before this matters)."""
