"""Voices beyond the engine's own: cloning conditioning and its cache (later: the voice library)."""
