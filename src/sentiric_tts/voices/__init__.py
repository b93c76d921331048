"""Voices beyond the engine's own: cloning conditioning, its cache, and the voice library."""
