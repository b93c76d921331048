"""Text frontend: the clean-up of every text, its spoken length, and sentence splitting under an
engine's length limit."""

from __future__ import annotations

import itertools
import re
import unicodedata

import regex

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
# Controls, zero-width spaces, line and paragraph separators and the BOM: breaks between words.
_CONTROL_CHARS = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\ufeff]")
# Code points that are no text at all: lone surrogates (half a UTF-16 pair, which no encoder or
# engine takes), noncharacters, private-use and unassigned code points.
_INVALID = regex.compile(r"[\p{Cs}\p{Cn}\p{Co}]+")
# Invisible marks inside words (soft hyphen, bidi controls, tags, variation selectors, emoji
# skin tones and keycaps): removed, so the word around them stays one word.
_INVISIBLE = regex.compile(r"[\p{Cf}\p{Variation_Selector}\p{Emoji_Modifier}\u20e3]+")
# Emoji and other pictographs: no voice says them (an engine reads their names or makes noise).
# Letterlike signs below U+2190 (©, ®, ™, ‼) are read as words and stay.
_PICTOGRAPHS = regex.compile(
    r"(?V1)[[\p{Extended_Pictographic}\p{Regional_Indicator}]&&[\u2190-\U0010ffff]]+"
)
MAX_MARKS_PER_LETTER = 4
"""Combining marks one letter may carry: real scripts stack at most about three (Vietnamese,
Hebrew, Thai). A letter under more ("Zalgo" text stacks dozens, which engines read as noise or
as accent names) loses them all and is read as the plain letter."""
_MARK_FLOOD = regex.compile(rf"(\P{{M}}?)\p{{M}}{{{MAX_MARKS_PER_LETTER + 1},}}")
MAX_REPEATS = 3
"""The same letter, sign or short group of them this many times in a row at most ("sooo",
"!!!", "hahaha"): a longer run says nothing more and costs engine time (Piper spells 160 "x"s
for nine seconds). Digits are never cut: they are numbers."""
_REPEATED = re.compile(rf"([^\d\s]{{1,{MAX_MARKS_PER_LETTER + 1}}}?)\1{{{MAX_REPEATS},}}")
MAX_SIGNS_IN_A_ROW = 4
"""Punctuation and symbols in a row at most ('..."', "?!?!"); a longer run is cut there."""
_SIGN_RUN = regex.compile(rf"([^\p{{L}}\p{{N}}\p{{M}}\s]{{{MAX_SIGNS_IN_A_ROW}}})[^\p{{L}}\p{{N}}\p{{M}}\s]+")


CLAUSE_PAUSE_S = 0.12
"""Silence between pieces of one sentence cut at a clause: a comma's pause, at speed 1."""


def clause_pause_s(speed: float) -> float:
    """A comma's pause when speaking at `speed`: the engine's own pauses shrink as it speaks
    faster, so a sentence cut at a clause keeps the length it would have whole."""
    return CLAUSE_PAUSE_S / speed


def scrub_code_points(text: str) -> str:
    """`text` without what is no text at all (lone surrogates, noncharacters, private-use and
    unassigned code points), with control characters as spaces: safe to parse and to encode."""
    if not text.isascii():
        text = _INVALID.sub("", text)
    return _CONTROL_CHARS.sub(" ", text)


def clean_text(text: str) -> str:
    """The clean-up every text gets before it is spoken, in one linear pass per rule: invalid code
    points, invisible marks and floods of combining marks dropped, pictographs and controls turned
    into spaces, NFC, runs of one repeated letter, sign or group and of signs cut short,
    whitespace collapsed."""
    text = scrub_code_points(text)
    if not text.isascii():
        text = _MARK_FLOOD.sub(r"\1", _PICTOGRAPHS.sub(" ", _INVISIBLE.sub("", text)))
        text = unicodedata.normalize("NFC", text)
    text = _SIGN_RUN.sub(r"\1", _REPEATED.sub(r"\1" * MAX_REPEATS, text))
    return re.sub(r"\s+", " ", text).strip()


_WIDE = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
_READ_ALOUD_SIGN = regex.compile(r"""[^\p{L}\p{N}\p{M}\s.,;:!?¡¿'"“”‘’„‚«»‹›()\[\]{}\-–—…。、！？，]""")
WIDE_CHAR_WEIGHT = 3
"""A CJK character is a syllable or more: about three Latin letters' worth of speech."""
SIGN_WEIGHT = 5
"""A sign an engine reads as a word ("#": "hash", "%": "percent") takes as long as a short word."""


def spoken_length(text: str) -> int:
    """`text`'s length in characters, weighted by how long they take to say: the unit of every
    audio-length rule (the plan's estimate, the runaway guard)."""
    length = len(text)
    if not text.isascii():
        length += (WIDE_CHAR_WEIGHT - 1) * len(_WIDE.findall(text))
    return length + (SIGN_WEIGHT - 1) * len(_READ_ALOUD_SIGN.findall(text))


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


def ends_with_sentence_punctuation(text: str) -> bool:
    """Whether plain `text` ends with sentence punctuation (else it was cut at a clause or a word)."""
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
