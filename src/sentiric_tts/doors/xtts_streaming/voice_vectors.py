"""Stand-in speaker vectors for engines whose voices have no latents (Piper).

xtts-streaming-server's clients pick a voice by fetching /studio_speakers and posting that voice's
vectors back with every request. On an engine without latents each voice gets a distinct vector
derived from its id (the same on every server and every start), and a posted vector is mapped
back to the voice whose vector it is: clients round values (float16, JSON), so the match is by
direction (cosine), which two of these random 512-value vectors never come close to sharing.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

EMBEDDING_SIZE = 512
"""XTTS v2's speaker embedding size, so the vectors have the shape clients expect."""
LATENT_WIDTH = 1024
"""XTTS v2's latent width: one row stands for the latents (they mean nothing here)."""
MATCH_COSINE = 0.99
"""A posted embedding names a voice when this close to its vector (float16 keeps ~0.99999)."""


@functools.lru_cache(maxsize=1024)
def voice_vectors(voice_id: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(speaker embedding, one latent row) standing for `voice_id`, as float16 values."""
    digest = hashlib.sha256(b"sentiric-tts voice vector\0" + voice_id.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    embedding = rng.standard_normal(EMBEDDING_SIZE)
    embedding /= np.linalg.norm(embedding)
    latent = rng.standard_normal(LATENT_WIDTH) * 0.1
    return (
        tuple(embedding.astype(np.float16).astype(float).tolist()),
        tuple(latent.astype(np.float16).astype(float).tolist()),
    )


def voice_of(embedding: Sequence[float], voice_ids: Iterable[str]) -> str | None:
    """The voice whose vector `embedding` is; None when it is none of theirs. ValueError when
    it is not a 512-value vector of finite numbers."""
    posted = np.asarray(embedding, dtype=np.float64).reshape(-1)
    if posted.size != EMBEDDING_SIZE:
        raise ValueError(f"speaker_embedding has {posted.size} values; it must have {EMBEDDING_SIZE}")
    if not np.isfinite(posted).all():
        raise ValueError("speaker_embedding must hold finite numbers")
    norm = float(np.linalg.norm(posted))
    if norm == 0.0:
        return None
    best, best_cosine = None, MATCH_COSINE
    for voice_id in voice_ids:
        vector = np.asarray(voice_vectors(voice_id)[0])
        cosine = float(posted @ vector) / (norm * float(np.linalg.norm(vector)))
        if cosine >= best_cosine:
            best, best_cosine = voice_id, cosine
    return best
