"""SSML parsing: every supported tag and attribute form, merging, limits and hostile input."""

from __future__ import annotations

import math
import tracemalloc

import pytest

from sentiric_tts.synthesis.request import Prosody
from sentiric_tts.synthesis.ssml import (
    BREAK_STRENGTHS,
    EMPHASIS_LEVELS,
    PARAGRAPH_PAUSE_S,
    PITCH_LABELS,
    RATE_LABELS,
    SENTENCE_PAUSE_S,
    SILENT_DB,
    VOLUME_LABELS,
    Break,
    Mark,
    SpeechText,
    SsmlError,
    looks_like_ssml,
    parse_ssml,
)

NS = 'xmlns="http://www.w3.org/2001/10/synthesis"'


def speak(body: str, attrs: str = "") -> str:
    return f"<speak {attrs}>{body}</speak>"


def texts(source: str, **kwargs: object) -> list[SpeechText]:
    return [i for i in parse_ssml(source, **kwargs).items if isinstance(i, SpeechText)]  # type: ignore[arg-type]


def only_prosody(body: str) -> Prosody:
    (item,) = texts(speak(body))
    return item.prosody


def test_looks_like_ssml() -> None:
    assert looks_like_ssml("  \n<speak>hi</speak>")
    assert looks_like_ssml('<?xml version="1.0"?>\n<speak>hi</speak>')
    assert not looks_like_ssml("hello <speak>")
    assert not looks_like_ssml("<p>hi</p>")


def test_namespaced_document_with_version_and_lang() -> None:
    doc = parse_ssml(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<speak version="1.1" {NS} xmlns:ssml="http://www.w3.org/2001/10/synthesis" xml:lang="de-DE">'
        'Hallo <ssml:break time="300ms"/><prosody rate="fast">Welt</prosody></speak>'
    )
    assert doc.language == "de-DE"
    assert doc.ignored_tags == ()
    assert doc.items == (
        SpeechText("Hallo", "de-DE", None, Prosody()),
        Break(0.3),
        SpeechText("Welt", "de-DE", None, Prosody(rate=1.25)),
    )


def test_default_language_applies_without_xml_lang() -> None:
    doc = parse_ssml(speak("hi"), default_language="fr")
    assert doc.language == "fr"
    assert doc.items == (SpeechText("hi", "fr", None, Prosody()),)


@pytest.mark.parametrize(
    ("attrs", "seconds"),
    [
        ('time="250ms"', 0.25),
        ('time="1.5s"', 1.5),
        ('time="2S"', 2.0),
        ('time="10s"', 10.0),
        ('time="500ms" strength="x-strong"', 0.5),  # time wins
        ("", BREAK_STRENGTHS["medium"]),
        *[(f'strength="{k}"', v) for k, v in BREAK_STRENGTHS.items() if v > 0],
    ],
)
def test_break(attrs: str, seconds: float) -> None:
    doc = parse_ssml(speak(f"a<break {attrs}/>b"))
    assert doc.items[1] == Break(seconds)


def test_zero_breaks_emit_nothing_but_still_separate_texts() -> None:
    for attrs in ('strength="none"', 'time="0ms"'):
        items = parse_ssml(speak(f"a <break {attrs}/> b")).items
        assert all(not isinstance(i, Break) for i in items)


@pytest.mark.parametrize(
    ("attrs", "attribute"),
    [
        ('time="-5s"', "time"),
        ('time="11s"', "time"),
        ('time="5"', "time"),
        ('time="fast"', "time"),
        ('strength="loud"', "strength"),
    ],
)
def test_bad_break_values(attrs: str, attribute: str) -> None:
    with pytest.raises(SsmlError, match=f"<break> {attribute}=.*allowed"):
        parse_ssml(speak(f"<break {attrs}/>"))


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        *RATE_LABELS.items(),
        ("50%", 0.5),
        ("150%", 1.5),
        ("+20%", 1.2),
        ("-10%", 0.9),
        ("1.5", 1.5),
        ("0.8", 0.8),
    ],
)
def test_prosody_rate(rate: str, expected: float) -> None:
    assert only_prosody(f'<prosody rate="{rate}">x</prosody>').rate == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pitch", "expected"),
    [
        *PITCH_LABELS.items(),
        ("+2st", 2.0),
        ("-3st", -3.0),
        ("+10%", 12 * math.log2(1.1)),
        ("-20%", 12 * math.log2(0.8)),
    ],
)
def test_prosody_pitch(pitch: str, expected: float) -> None:
    assert only_prosody(f'<prosody pitch="{pitch}">x</prosody>').pitch_semitones == pytest.approx(expected)


@pytest.mark.parametrize(
    ("volume", "expected"), [*VOLUME_LABELS.items(), ("+3dB", 3.0), ("-6dB", -6.0), ("+1.5db", 1.5)]
)
def test_prosody_volume(volume: str, expected: float) -> None:
    assert only_prosody(f'<prosody volume="{volume}">x</prosody>').volume_db == pytest.approx(expected)


def test_silent_is_mute() -> None:
    assert VOLUME_LABELS["silent"] == SILENT_DB <= -100


@pytest.mark.parametrize(
    ("attrs", "attribute"),
    [
        ('rate="banana"', "rate"),
        ('rate="-100%"', "rate"),
        ('rate="0"', "rate"),
        ('rate="50"', "rate"),
        ('pitch="200Hz"', "pitch"),
        ('pitch="+30st"', "pitch"),
        ('pitch="-100%"', "pitch"),
        ('pitch="up"', "pitch"),
        ('volume="+50dB"', "volume"),
        ('volume="50"', "volume"),
    ],
)
def test_bad_prosody_values(attrs: str, attribute: str) -> None:
    with pytest.raises(SsmlError, match=f"<prosody> {attribute}=.*allowed"):
        parse_ssml(speak(f"<prosody {attrs}>x</prosody>"))


def test_nested_prosody_composes() -> None:
    body = '<prosody rate="slow" pitch="+2st" volume="-6dB"><prosody rate="50%" pitch="-1st" volume="+3dB">x</prosody></prosody>'
    assert only_prosody(body) == Prosody(rate=0.375, pitch_semitones=1.0, volume_db=-3.0)


def test_emphasis_levels_and_nesting() -> None:
    for level, prosody in EMPHASIS_LEVELS.items():
        assert only_prosody(f'<emphasis level="{level}">x</emphasis>') == prosody
    assert only_prosody("<emphasis>x</emphasis>") == EMPHASIS_LEVELS["moderate"]
    nested = only_prosody('<prosody rate="2"><emphasis level="strong">x</emphasis></prosody>')
    assert nested == Prosody(rate=2 * 0.85, volume_db=4.0)
    with pytest.raises(SsmlError, match="level"):
        parse_ssml(speak('<emphasis level="huge">x</emphasis>'))


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        ('<say-as interpret-as="cardinal">42</say-as>', "forty-two"),
        ('<say-as interpret-as="number">7</say-as>', "seven"),
        ('<say-as interpret-as="ordinal">2</say-as>', "second"),
        ('<say-as interpret-as="characters">SSML</say-as>', "S S M L"),
        ('<say-as interpret-as="spell-out">ab</say-as>', "a b"),
        ('<say-as interpret-as="digits">42</say-as>', "four two"),
        ('<say-as interpret-as="telephone">555-12</say-as>', "five five five, one two"),
        ('<say-as interpret-as="date" format="mdy">03/05/2024</say-as>', "March fifth, twenty twenty-four"),
        ('<say-as interpret-as="date" format="dmy">05/03/2024</say-as>', "March fifth, twenty twenty-four"),
        ('<say-as interpret-as="time">14:30</say-as>', "fourteen thirty"),
    ],
)
def test_say_as(element: str, expected: str) -> None:
    (item,) = texts(speak(element, 'xml:lang="en"'))
    assert item.text == expected


def test_say_as_joins_surrounding_text_and_uses_the_language() -> None:
    (item,) = texts(speak('Nummer <say-as interpret-as="cardinal">3</say-as>.', 'xml:lang="de"'))
    assert item.text == "Nummer drei."


def test_say_as_errors() -> None:
    with pytest.raises(SsmlError, match="interpret-as"):
        parse_ssml(speak("<say-as>3</say-as>"))
    with pytest.raises(SsmlError, match="supported: cardinal"):
        parse_ssml(speak('<say-as interpret-as="weird">3</say-as>'))


def test_sub_speaks_the_alias() -> None:
    (item,) = texts(speak('The <sub alias="World Wide Web">WWW</sub> site'))
    assert item.text == "The World Wide Web site"
    with pytest.raises(SsmlError, match="alias"):
        parse_ssml(speak("<sub>WWW</sub>"))


def test_sentences_and_paragraphs_pause_and_never_glue() -> None:
    doc = parse_ssml(speak("<p><s>One</s><s>Two!</s></p><p>Three</p>after"))
    assert doc.items == (
        SpeechText("One.", None, None, Prosody()),
        Break(SENTENCE_PAUSE_S),
        SpeechText("Two!", None, None, Prosody()),
        Break(PARAGRAPH_PAUSE_S),  # </s></p> pause once, the longer
        SpeechText("Three.", None, None, Prosody()),
        Break(PARAGRAPH_PAUSE_S),
        SpeechText("after", None, None, Prosody()),
    )


def test_no_pause_at_the_end_of_the_document() -> None:
    doc = parse_ssml(speak("<p>One</p>\n  <p>Two</p>\n"))
    assert doc.items[-1] == SpeechText("Two.", None, None, Prosody())
    # An explicit final break is the client's wish and is kept.
    assert parse_ssml(speak('Hi<break time="1s"/>')).items[-1] == Break(1.0)


def test_lang_voice_and_mark() -> None:
    doc = parse_ssml(
        speak(
            'Hello <lang xml:lang="fr">bonjour</lang> <voice name="anna">hi <mark name="m1"/>there</voice>',
            'xml:lang="en"',
        )
    )
    assert doc.items == (
        SpeechText("Hello", "en", None, Prosody()),
        SpeechText("bonjour", "fr", None, Prosody()),
        SpeechText("hi", "en", "anna", Prosody()),
        Mark("m1"),
        SpeechText("there", "en", "anna", Prosody()),
    )
    with pytest.raises(SsmlError, match="name"):
        parse_ssml(speak("<mark/>"))
    with pytest.raises(SsmlError, match="xml:lang"):
        parse_ssml(speak("<lang>x</lang>"))


def test_unknown_tags_and_audio_speak_their_text() -> None:
    doc = parse_ssml(
        speak('<foo>one</foo> <audio src="a.wav">two<desc>a chime</desc></audio> <bar/><foo>three</foo>')
    )
    assert doc.ignored_tags == ("foo", "audio", "bar")
    assert [i.text for i in doc.items if isinstance(i, SpeechText)] == ["one two three"]


def test_adjacent_equal_contexts_merge_and_whitespace_is_normalised() -> None:
    doc = parse_ssml(speak('  a\n\n <prosody rate="1">b</prosody>\t<emphasis level="none">c</emphasis>  '))
    assert doc.items == (SpeechText("a b c", None, None, Prosody()),)


def test_empty_texts_are_dropped() -> None:
    assert parse_ssml(speak("  <prosody rate='fast'>  </prosody> ")).items == ()


def test_root_must_be_speak() -> None:
    with pytest.raises(SsmlError, match="root element must be <speak>"):
        parse_ssml("<p>hello</p>")


def test_malformed_xml_reports_line_and_column() -> None:
    with pytest.raises(SsmlError) as info:
        parse_ssml("<speak>\n  <p>hello</x>\n</speak>")
    assert info.value.line == 2
    assert info.value.column is not None and info.value.column > 1
    assert str(info.value).startswith("line 2, column ")
    assert "malformed SSML" in str(info.value)


def test_undeclared_prefix_is_malformed() -> None:
    with pytest.raises(SsmlError, match="unbound prefix"):
        parse_ssml(speak("<ssml:break/>"))


# --- limits and hostile input ---------------------------------------------------------------


def test_max_bytes_counts_utf8() -> None:
    body = "é" * 40
    with pytest.raises(SsmlError, match="larger than 64 bytes"):
        parse_ssml(speak(body), max_bytes=64)  # 47 characters, 87 bytes
    parse_ssml(speak(body), max_bytes=100)


def test_max_depth() -> None:
    deep = "<prosody>" * 40 + "x" + "</prosody>" * 40
    with pytest.raises(SsmlError, match="deeper than 32"):
        parse_ssml(speak(deep))
    parse_ssml(speak("<prosody>" * 30 + "x" + "</prosody>" * 30))


def test_max_elements_refuses_a_huge_flat_document_early() -> None:
    flat = speak("<mark name='m'/>" * 3000)
    with pytest.raises(SsmlError, match="more than 2048 elements"):
        parse_ssml(flat)
    with pytest.raises(SsmlError, match="more than 10 elements"):
        parse_ssml(speak("<break/>" * 11), max_elements=10)


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    + "]><speak>&lol9;</speak>"
)
QUADRATIC = '<!DOCTYPE speak [<!ENTITY a "' + "x" * 30000 + '">]><speak>' + "&a;" * 7000 + "</speak>"
XXE = '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><speak>&xxe;</speak>'
EXTERNAL_DTD = '<!DOCTYPE speak SYSTEM "http://example.com/evil.dtd"><speak>hi</speak>'
PARAMETER_ENTITY = '<!DOCTYPE speak [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><speak>hi</speak>'


@pytest.mark.parametrize("source", [BILLION_LAUGHS, QUADRATIC, XXE, EXTERNAL_DTD, PARAMETER_ENTITY])
def test_hostile_documents_are_refused_without_expansion(source: str) -> None:
    assert len(source.encode()) < 65536
    tracemalloc.start()
    try:
        with pytest.raises(SsmlError, match="DOCTYPE") as info:
            parse_ssml(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "root" not in str(info.value)
    assert "passwd" not in str(info.value) and "root:" not in str(info.value)
    # Expanding any of these would take megabytes to gigabytes; refusing takes a few copies of the input.
    assert peak < 2_000_000


def test_inline_entity_reference_without_dtd_is_malformed() -> None:
    with pytest.raises(SsmlError, match="undefined entity"):
        parse_ssml(speak("&lol;"))


def test_predefined_entities_are_fine() -> None:
    (item,) = texts(speak("Tom &amp; Jerry &lt;3"))
    assert item.text == "Tom & Jerry <3"


def test_empty_and_non_xml_input() -> None:
    for source in ("", "   ", "just text"):
        with pytest.raises(SsmlError):
            parse_ssml(source)
