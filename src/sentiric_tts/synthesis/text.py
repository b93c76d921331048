"""Text frontend: whitespace clean-up and sentence splitting under an engine's length limit."""

from __future__ import annotations

import itertools
import re
import unicodedata

# Abbreviations whose trailing period does not end a sentence.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
        "approx",
        "no",
        "dept",
        "est",
        "fig",
        "inc",
        "ltd",
        "co",
        "corp",
        "mt",
    ]
)
# A sentence ends at . ! ? … (optionally followed by closing quotes/brackets) before whitespace,
# and at CJK full stops, which are not followed by spaces.
_SENTENCE_END = re.compile(r"""([.!?…]+["'”’)\]]*)\s+|([。！？])""")
_CLAUSE_BREAK = re.compile(r"""[,;:—–]\s+|\s[-–—]\s""")
_CONTROL_CHARS = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\ufeff]")


CLAUSE_PAUSE_S = 0.12
"""Silence between pieces of one sentence cut at a clause: a comma's pause, at speed 1."""


def clause_pause_s(speed: float) -> float:
    """A comma's pause when speaking at `speed`: the engine's own pauses shrink as it speaks
    faster, so a sentence cut at a clause keeps the length it would have whole."""
    return CLAUSE_PAUSE_S / speed


def normalize_whitespace(text: str) -> str:
    """NFC-normalise, drop control and zero-width characters, collapse runs of whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL_CHARS.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def ends_with_abbreviation(fragment: str) -> bool:
    last_word = fragment.rsplit(" ", 1)[-1].rstrip(".").lower()
    # Single letters ("J. R. R. Tolkien") and known abbreviations do not close a sentence.
    return (len(last_word) == 1 and last_word.isalpha()) or last_word in _ABBREVIATIONS


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence's closing punctuation (and quotes).

    Only endings followed by whitespace count (CJK full stops need none), so a text that stops
    right after a period has not ended its sentence yet: more of it may still arrive."""
    ends: list[int] = []
    for match in _SENTENCE_END.finditer(text):
        end = match.end(1) if match.group(1) else match.end(2)
        if match.group(1) and match.group(1).startswith(".") and ends_with_abbreviation(text[:end]):
            continue
        ends.append(end)
    return ends


def split_sentences(text: str) -> list[str]:
    """Split normalised text into sentences, keeping their closing punctuation."""
    bounds = [0, *sentence_ends(text), len(text)]
    return [text[start:end].strip() for start, end in itertools.pairwise(bounds) if text[start:end].strip()]


def _split_at_words(text: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in text.split(" "):
        while len(word) > max_chars:  # a single "word" longer than the limit (e.g. a URL)
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= max_chars:
            current = candidate
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


def _split_long_sentence(sentence: str, max_chars: int) -> list[str]:
    """Cut a sentence over the limit at clause breaks where possible, else between words."""
    if len(sentence) <= max_chars:
        return [sentence]
    clauses: list[str] = []
    start = 0
    for match in _CLAUSE_BREAK.finditer(sentence):
        clauses.append(sentence[start : match.start() + len(match.group().rstrip())].strip())
        start = match.end()
    clauses.append(sentence[start:].strip())
    pieces: list[str] = []
    current = ""
    for clause in filter(None, clauses):
        candidate = f"{current} {clause}" if current else clause
        if len(candidate) <= max_chars:
            current = candidate
            continue
        if current:
            pieces.append(current)
        if len(clause) <= max_chars:
            current = clause
        else:
            *head, current = _split_at_words(clause, max_chars)
            pieces.extend(head)
    if current:
        pieces.append(current)
    return pieces


def split_for_engine(text: str, max_chars: int) -> list[str]:
    """Sentences of `text`, each at most `max_chars` long, never cutting inside a word."""
    segments: list[str] = []
    for sentence in split_sentences(text):
        segments.extend(_split_long_sentence(sentence, max_chars))
    return segments


_SENTENCE_FINAL = re.compile(r"""[.!?…。！？]["'”’)\]]*$""")


def ends_sentence(text: str) -> bool:
    """Whether `text` ends with sentence punctuation (else it was cut at a clause or a word)."""
    return bool(_SENTENCE_FINAL.search(text))


def split_first_clause(text: str, longer_than: int) -> list[str]:
    """Cut an opening sentence longer than `longer_than` characters after its first clause, so
    that its first audio comes sooner: an engine that renders a segment at once needs time in
    proportion to its length. A sentence with no clause break before its end is kept whole: a cut
    between words would break its intonation."""
    if longer_than <= 0 or len(text) <= longer_than:
        return [text]
    for match in _CLAUSE_BREAK.finditer(text):
        head = text[: match.start() + len(match.group().rstrip())].strip()
        tail = text[match.end() :].strip()
        if any(char.isalnum() for char in head) and tail:
            return [head, tail]
    return [text]
