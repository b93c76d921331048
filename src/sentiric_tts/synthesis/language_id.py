"""Which of the engine's languages a text is written in, for clients that do not say (OpenAI's API
has no language field). Offline: py3langid ships its model inside the package."""

from __future__ import annotations

import threading
from collections.abc import Sequence

MIN_LETTERS = 12
"""Fewer letters than this and an n-gram guess is noise ("OK", "Hi"): keep the default."""
MIN_CONFIDENCE = 0.9


def _primary(code: str) -> str:
    return code.split("-")[0].lower()


class LanguageDetector:
    """Guesses among a fixed set of engine language codes ("en", "zh-cn", ...); None when unsure."""

    def __init__(self, languages: Sequence[str]) -> None:
        # The identifier knows primary subtags; map them back to the engine's own codes.
        self._codes = {_primary(code): code for code in languages}
        self._identifier: object | None = None
        self._lock = threading.Lock()

    def _load(self) -> object | None:
        with self._lock:
            if self._identifier is None and len(self._codes) > 1:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                known = [code for code in self._codes if code in identifier.nb_classes]
                identifier.set_languages(known)
                self._identifier = identifier
            return self._identifier

    def detect(self, text: str) -> str | None:
        if len(self._codes) <= 1 or sum(ch.isalpha() for ch in text) < MIN_LETTERS:
            return None
        identifier = self._load()
        if identifier is None:
            return None
        code, confidence = identifier.classify(text)  # type: ignore[attr-defined]
        if confidence < MIN_CONFIDENCE:
            return None
        return self._codes.get(code)
