"""SSML (W3C 1.1 subset) parsed safely into speech items the pipeline renders.

Safety: parsing goes through `defusedxml` with DTDs forbidden, so no entity, DTD or external
reference is ever expanded (billion laughs, quadratic blowup, XXE are refused at the DOCTYPE).
Size is checked before parsing, and depth and element count while the parser streams, so an
enormous document is refused early. Markup is never read aloud: anything wrong is an SsmlError.

Tables (values are this service's choices; SSML leaves them to the processor):

=============  =====================================================================
break strength none 0 s, x-weak 0.1 s, weak 0.2 s, medium 0.4 s (the default), strong 0.7 s,
               x-strong 1.2 s; `time` wins over `strength`; times above 10 s are an error.
prosody rate   x-slow 0.5, slow 0.75, medium/default 1.0, fast 1.25, x-fast 1.5; "1.5" is a
               multiplier, "50%" half the default rate, "+20%"/"-10%" relative (1.2, 0.9).
               Each attribute must land within 0.1..10.
prosody pitch  x-low -6 st, low -3 st, medium/default 0, high +3 st, x-high +6 st; "+2st",
               "-3st"; "+10%" is 12*log2(1.1) semitones; each within +-24 st; Hz is refused
               (the engine's base pitch is unknown).
prosody volume silent SILENT_DB (-120 dB: mute), x-soft -12 dB, soft -6 dB, medium/default 0,
               loud +6 dB, x-loud +12 dB; "+3dB", "-6dB" within +-40 dB.
emphasis       strong: rate 0.85, +4 dB; moderate (the default): rate 0.93, +2 dB;
               reduced: rate 1.1, -3 dB; none: unchanged.
<s>, <p>       a Break of SENTENCE_PAUSE_S (0.25 s) after each sentence and PARAGRAPH_PAUSE_S
               (0.6 s) after each paragraph (the larger wins where both end together; none at
               the end of the document), and a full stop is added to text ending without one.
=============  =====================================================================
"""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import defusedxml
import defusedxml.ElementTree as DET

from sentiric_tts.synthesis.normalize import say_as
from sentiric_tts.synthesis.request import Mark, Prosody
from sentiric_tts.synthesis.request import Pause as Break  # the same silence item the pipeline renders
from sentiric_tts.synthesis.text import clean_text

SILENT_DB = -120.0
"""Volume of `volume="silent"`: the pipeline should treat anything at or below it as mute."""
MAX_BREAK_S = 10.0
SENTENCE_PAUSE_S = 0.25
PARAGRAPH_PAUSE_S = 0.6

BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7, "x-strong": 1.2}
RATE_LABELS = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}
PITCH_LABELS = {"x-low": -6.0, "low": -3.0, "medium": 0.0, "default": 0.0, "high": 3.0, "x-high": 6.0}
VOLUME_LABELS = {
    "silent": SILENT_DB, "x-soft": -12.0, "soft": -6.0, "medium": 0.0, "default": 0.0, "loud": 6.0, "x-loud": 12.0,
}  # fmt: skip
EMPHASIS_LEVELS = {
    "strong": Prosody(rate=0.85, volume_db=4.0),
    "moderate": Prosody(rate=0.93, volume_db=2.0),
    "reduced": Prosody(rate=1.1, volume_db=-3.0),
    "none": Prosody(),
}
_RATE_RANGE = (0.1, 10.0)
_MAX_PITCH_ST = 24.0
_MAX_GAIN_DB = 40.0
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?…])(?=\s|$)")
_SENTENCE_END = re.compile(r"""[.!?…。！？]["'”’)\]]*$""")


@dataclass(frozen=True)
class SpeechText:
    """Text to speak, in one language and voice, with one prosody (None: the request's own)."""

    text: str
    language: str | None
    voice: str | None
    prosody: Prosody


SsmlItem = SpeechText | Break | Mark


@dataclass(frozen=True)
class SsmlDocument:
    items: tuple[SsmlItem, ...]
    language: str | None
    """The `<speak xml:lang>` (or the default language given to the parser)."""
    ignored_tags: tuple[str, ...]
    """Tags spoken as plain text because they are not supported, in order of appearance."""


class SsmlError(ValueError):
    """The SSML cannot be used; `line` and `column` (1-based) point at the fault where known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(f"{where}{message}")


def looks_like_ssml(text: str) -> bool:
    """Whether a request's text is SSML: it starts with `<speak`, an XML declaration or a DOCTYPE.

    A declaration or DOCTYPE counts too, so hostile documents are refused as SSML instead of
    being read aloud as text.
    """
    stripped = text.lstrip()
    return stripped.startswith(("<speak", "<?xml", "<!DOCTYPE", "<!doctype"))


# --- attribute values ----------------------------------------------------------------------


def _invalid(element: str, attribute: str, value: str, allowed: str) -> SsmlError:
    return SsmlError(f"<{element}> {attribute}={value!r} is not valid; allowed: {allowed}")


_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"


def _break_seconds(el: ET.Element) -> float:
    time, strength = el.get("time"), el.get("strength")
    if time is not None:
        m = re.fullmatch(rf"\s*({_NUMBER})\s*(ms|s)\s*", time, re.IGNORECASE)
        allowed = f'a duration such as "250ms" or "1.5s", from 0 to {MAX_BREAK_S:g}s'
        if not m:
            raise _invalid("break", "time", time, allowed)
        seconds = float(m[1]) / (1000.0 if m[2].lower() == "ms" else 1.0)
        if not 0.0 <= seconds <= MAX_BREAK_S:
            raise _invalid("break", "time", time, allowed)
        return seconds
    if strength is not None:
        key = strength.strip().lower()
        if key not in BREAK_STRENGTHS:
            raise _invalid("break", "strength", strength, ", ".join(BREAK_STRENGTHS))
        return BREAK_STRENGTHS[key]
    return BREAK_STRENGTHS["medium"]


def _rate(value: str) -> float:
    key = value.strip().lower()
    allowed = f'{", ".join(RATE_LABELS)}, a multiplier ("1.5"), a percentage ("50%", "+20%", "-10%") within {_RATE_RANGE[0]:g}..{_RATE_RANGE[1]:g}'
    rate: float | None = RATE_LABELS.get(key)
    if rate is None:
        m = re.fullmatch(rf"({_NUMBER})(%?)", key)
        if not m:
            raise _invalid("prosody", "rate", value, allowed)
        number = float(m[1])
        if not m[2]:
            rate = number
        elif m[1][0] in "+-":  # relative change of the current rate
            rate = 1.0 + number / 100.0
        else:  # a bare percentage of the default rate
            rate = number / 100.0
    if not _RATE_RANGE[0] <= rate <= _RATE_RANGE[1]:
        raise _invalid("prosody", "rate", value, allowed)
    return rate


def _pitch(value: str) -> float:
    key = value.strip().lower()
    allowed = f'{", ".join(PITCH_LABELS)}, semitones ("+2st", "-3st"), a relative percentage ("+10%") within +-{_MAX_PITCH_ST:g} semitones'
    semitones: float | None = PITCH_LABELS.get(key)
    if semitones is None:
        m = re.fullmatch(rf"({_NUMBER})(st|%)", key)
        if not m:
            raise _invalid("prosody", "pitch", value, allowed)
        number = float(m[1])
        if m[2] == "st":
            semitones = number
        elif number <= -100.0:
            raise _invalid("prosody", "pitch", value, allowed)
        else:
            semitones = 12.0 * math.log2(1.0 + number / 100.0)
    if abs(semitones) > _MAX_PITCH_ST:
        raise _invalid("prosody", "pitch", value, allowed)
    return semitones


def _volume(value: str) -> float:
    key = value.strip().lower()
    allowed = (
        f'{", ".join(VOLUME_LABELS)}, or a gain in decibels ("+3dB", "-6dB") within +-{_MAX_GAIN_DB:g} dB'
    )
    if key in VOLUME_LABELS:
        return VOLUME_LABELS[key]
    m = re.fullmatch(rf"({_NUMBER})db", key)
    if not m or abs(float(m[1])) > _MAX_GAIN_DB:
        raise _invalid("prosody", "volume", value, allowed)
    return float(m[1])


def _prosody(el: ET.Element) -> Prosody:
    rate, pitch, volume = el.get("rate"), el.get("pitch"), el.get("volume")
    return Prosody(
        rate=_rate(rate) if rate is not None else 1.0,
        pitch_semitones=_pitch(pitch) if pitch is not None else 0.0,
        volume_db=_volume(volume) if volume is not None else 0.0,
    )


def _required(el: ET.Element, tag: str, attribute: str) -> str:
    value = el.get(attribute)
    if value is None or not value.strip():
        raise SsmlError(f"<{tag}> needs a non-empty {attribute} attribute")
    return value.strip()


# --- walking the tree ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    language: str | None
    voice: str | None
    prosody: Prosody


@dataclass
class _Builder:
    """Collects items; text is kept raw and normalised once everything is merged."""

    default_language: str | None
    items: list[SsmlItem] = field(default_factory=list)
    structural: set[int] = field(default_factory=set)  # indexes of <s>/<p> pauses
    ignored: dict[str, None] = field(default_factory=dict)  # an ordered set

    def text(self, text: str | None, ctx: _Context) -> None:
        if not text:
            return
        last = self.items[-1] if self.items else None
        if isinstance(last, SpeechText) and (last.language, last.voice, last.prosody) == (
            ctx.language,
            ctx.voice,
            ctx.prosody,
        ):
            self.items[-1] = SpeechText(last.text + text, ctx.language, ctx.voice, ctx.prosody)
        else:
            self.items.append(SpeechText(text, ctx.language, ctx.voice, ctx.prosody))

    def pause(self, seconds: float) -> None:
        if seconds > 0:
            self.items.append(Break(seconds))

    def structural_pause(self, seconds: float, since: int) -> None:
        # Close the sentence so the engine ends it with falling intonation.
        for i in range(len(self.items) - 1, since - 1, -1):
            item = self.items[i]
            if isinstance(item, SpeechText) and item.text.strip():
                stripped = item.text.rstrip()
                if not _SENTENCE_END.search(stripped):
                    self.items[i] = SpeechText(stripped + ".", item.language, item.voice, item.prosody)
                break
        last = len(self.items) - 1
        if last in self.structural:  # "</s></p>": one pause, the longer
            previous = self.items[last]
            assert isinstance(previous, Break)
            self.items[last] = Break(max(previous.seconds, seconds))
            return
        self.items.append(Break(seconds))
        self.structural.add(len(self.items) - 1)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].split(":")[-1].lower()


def _walk(el: ET.Element, ctx: _Context, out: _Builder) -> None:
    tag = _local(el.tag)
    inner = ctx
    # The element's first text may merge into the item before it, so that one counts as its own.
    start = max(0, len(out.items) - 1)
    if tag == "break":
        out.pause(_break_seconds(el))
        return
    if tag == "mark":
        out.items.append(Mark(_required(el, "mark", "name")))
        return
    if tag == "sub":
        out.text(_required(el, "sub", "alias"), ctx)
        return
    if tag == "say-as":
        kind = el.get("interpret-as")
        if kind is None:
            raise SsmlError("<say-as> needs an interpret-as attribute")
        try:
            words = say_as(
                "".join(el.itertext()),
                kind,
                format=el.get("format"),
                language=ctx.language or out.default_language or "en",
            )
        except ValueError as exc:
            raise SsmlError(f"<say-as>: {exc}") from None
        # Spaces keep the words apart from text around the element.
        out.text(f" {words} ", ctx)
        return
    if tag == "desc":  # <audio>'s description is for display, not speech
        return
    if tag == "prosody":
        inner = _Context(ctx.language, ctx.voice, ctx.prosody.compose(_prosody(el)))
    elif tag == "emphasis":
        level = (el.get("level") or "moderate").strip().lower()
        if level not in EMPHASIS_LEVELS:
            raise _invalid("emphasis", "level", level, ", ".join(EMPHASIS_LEVELS))
        inner = _Context(ctx.language, ctx.voice, ctx.prosody.compose(EMPHASIS_LEVELS[level]))
    elif tag == "lang":
        language = (el.get(_XML_LANG) or el.get("lang") or "").strip()
        if not language:
            raise SsmlError("<lang> needs a non-empty xml:lang attribute")
        inner = _Context(language, ctx.voice, ctx.prosody)
    elif tag == "voice":
        language = el.get(_XML_LANG, "").strip() or ctx.language
        inner = _Context(language, el.get("name", "").strip() or ctx.voice, ctx.prosody)
    elif tag in ("s", "sentence", "p", "paragraph", "speak"):
        pass
    else:  # unknown or unsupported (<audio>): its text is spoken, the tag noted
        out.ignored.setdefault(tag, None)
    out.text(el.text, inner)
    for child in el:
        _walk(child, inner, out)
        out.text(child.tail, inner)
    if tag in ("s", "sentence"):
        out.structural_pause(SENTENCE_PAUSE_S, start)
    elif tag in ("p", "paragraph"):
        out.structural_pause(PARAGRAPH_PAUSE_S, start)


def _finish(out: _Builder) -> tuple[SsmlItem, ...]:
    """Normalise whitespace, drop empty texts and the pauses that would end the document."""
    items: list[SsmlItem] = []
    trailing: list[SsmlItem] = []  # structural pauses kept only if something follows them
    for i, item in enumerate(out.items):
        if isinstance(item, SpeechText):
            # say-as words are padded with spaces; no space may precede punctuation.
            text = _SPACE_BEFORE_PUNCT.sub(r"\1", clean_text(item.text))
            if not text:
                continue
            item = SpeechText(text, item.language, item.voice, item.prosody)
        if i in out.structural:
            trailing.append(item)
            continue
        items.extend(trailing)
        trailing.clear()
        items.append(item)
    return tuple(items)


# --- parsing -------------------------------------------------------------------------------


def _parse_tree(source: str, max_depth: int, max_elements: int) -> ET.Element:
    root: ET.Element | None = None
    depth = elements = 0
    try:
        for event, el in DET.iterparse(io.StringIO(source), events=("start", "end"), forbid_dtd=True):
            if event == "end":
                depth -= 1
                continue
            depth += 1
            elements += 1
            if root is None:
                root = el
            if depth > max_depth:
                raise SsmlError(f"SSML nests deeper than {max_depth} elements")
            if elements > max_elements:
                raise SsmlError(f"SSML has more than {max_elements} elements")
    except defusedxml.DTDForbidden:
        raise SsmlError("SSML must not contain a DOCTYPE or DTD (entities are never expanded)") from None
    except defusedxml.EntitiesForbidden:
        raise SsmlError("SSML must not declare entities") from None
    except defusedxml.ExternalReferenceForbidden:
        raise SsmlError("SSML must not reference external resources") from None
    except defusedxml.DefusedXmlException as exc:
        raise SsmlError(f"SSML uses a forbidden XML feature: {exc}") from None
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":", 1)[0]  # expat's message without its own position
        raise SsmlError(f"malformed SSML: {reason}", line, column + 1) from None
    if root is None:
        raise SsmlError("SSML document is empty")
    return root


def parse_ssml(
    source: str,
    *,
    default_language: str | None = None,
    max_bytes: int = 65536,
    max_depth: int = 32,
    max_elements: int = 2048,
) -> SsmlDocument:
    """Parse an SSML document into speech items; raises SsmlError for anything unusable."""
    if not source.lstrip().startswith("<"):
        raise SsmlError("SSML must be one <speak> document; the text starts outside it", 1, 1)
    # A str has at least one UTF-8 byte per character: refuse long ones before encoding them.
    if len(source) > max_bytes or len(source.encode("utf-8", "surrogatepass")) > max_bytes:
        raise SsmlError(f"SSML is larger than {max_bytes} bytes")
    root = _parse_tree(source, max_depth, max_elements)
    if _local(root.tag) != "speak":
        raise SsmlError(f"the SSML root element must be <speak>, not <{_local(root.tag)}>")
    language = (root.get(_XML_LANG) or "").strip() or default_language
    out = _Builder(default_language=language)
    _walk(root, _Context(language, None, Prosody()), out)
    return SsmlDocument(items=_finish(out), language=language, ignored_tags=tuple(out.ignored))
