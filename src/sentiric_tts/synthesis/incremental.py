"""Text that arrives in pieces (LLM tokens) cut into sentences as soon as each is complete.

A voice agent streams its reply token by token; speech should start with the first sentence, not
after the last token. The buffer releases a sentence once whitespace follows its closing
punctuation (so "3." of "3.5" is not taken for an ending), abbreviations aside. A run of text with no ending is cut at a clause or word once it is longer than
the engine's segment limit. In SSML mode a cut never falls inside an element.
"""

from __future__ import annotations

import re

from sentiric_tts.synthesis.text import ends_with_sentence_punctuation, sentence_ends, split_for_engine

_TAG = re.compile(r"<[^<>]*>")
_OPEN_TAG = re.compile(r"<\s*([A-Za-z][\w:-]*)[^<>]*?(/?)\s*>")
_CLOSE_TAG = re.compile(r"<\s*/")
_MASK = "\u2060"  # a word joiner: neither whitespace nor punctuation, so tags never split text


def _mask_tags(text: str) -> str:
    """Same length, tags blanked out, so sentence punctuation inside attributes is not seen."""
    return _TAG.sub(lambda match: _MASK * len(match.group()), text)


def _depth_changes(text: str) -> list[tuple[int, int]]:
    """(position after a tag, element depth there) for every tag in `text`."""
    depth = 0
    changes: list[tuple[int, int]] = []
    for match in _TAG.finditer(text):
        tag = match.group()
        if _CLOSE_TAG.match(tag):
            depth = max(0, depth - 1)
        else:
            opened = _OPEN_TAG.match(tag)
            if opened and not opened.group(2) and not tag.startswith(("<?", "<!")):
                depth += 1
        changes.append((match.end(), depth))
    return changes


class SentenceBuffer:
    def __init__(self, max_chars: int, ssml: bool = False) -> None:
        self._text = ""
        self._max_chars = max_chars
        self._ssml = ssml

    @property
    def pending_chars(self) -> int:
        return len(self._text)

    def add(self, text: str) -> list[str]:
        """Append `text`; return the sentences it completed (possibly none)."""
        self._text += text
        return self._take(final=False)

    def flush(self) -> list[str]:
        """Everything buffered, complete or not (the client said the text is done for now)."""
        return self._take(final=True)

    def clear(self) -> int:
        """Drop what is buffered (cancel); returns how many characters were dropped."""
        dropped, self._text = len(self._text.strip()), ""
        return dropped

    def _depth_at(self, position: int) -> int:
        depth = 0
        for end, after in _depth_changes(self._text[:position]):
            if end <= position:
                depth = after
        return depth

    def _cuts(self, final: bool) -> list[int]:
        """Positions in the buffer where a complete sentence ends."""
        masked = _mask_tags(self._text) if self._ssml else self._text
        cuts = [end for end in sentence_ends(masked) if not (self._ssml and self._depth_at(end) > 0)]
        if final and self._text.strip():
            cuts.append(len(self._text))
        return cuts

    def _take(self, final: bool) -> list[str]:
        out: list[str] = []
        start = 0
        for cut in self._cuts(final):
            sentence = self._text[start:cut].strip()
            if sentence:
                out.append(sentence)
            start = cut
        self._text = self._text[start:].lstrip() if not final else ""
        if not final and not self._ssml and len(self._text) > self._max_chars:
            # No ending in sight: speak what is there, cut at a clause or between words.
            *head, tail = split_for_engine(self._text, self._max_chars)
            out.extend(head)
            # Keep a trailing space: the next token starts a new word, not the end of this one.
            self._text = tail + (" " if self._text[-1].isspace() else "")
        return out


def ends_sentence_ignoring_tags(text: str) -> bool:
    """Whether a released piece, SSML tags removed, ends with sentence punctuation (else it was cut
    for length)."""
    return ends_with_sentence_punctuation(_TAG.sub("", text).strip())
