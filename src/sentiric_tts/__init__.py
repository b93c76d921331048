"""Sentiric TTS: a self-hosted text-to-speech service around Coqui XTTS v2 and Piper."""

__version__ = "0.1.0"
