"""Sentence splitting and clean-up: every segment fits the engine, no word is cut, nothing lost."""

from __future__ import annotations

import pytest

from sentiric_tts.synthesis.text import (
    SIGN_WEIGHT,
    WIDE_CHAR_WEIGHT,
    clean_text,
    ends_with_sentence_punctuation,
    split_first_clause,
    split_for_engine,
    split_sentences,
    spoken_length,
)


def test_whitespace_and_invisible_characters_are_cleaned() -> None:
    assert clean_text("  Hello\u200b \n\t world\u0007 ") == "Hello world"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello \ud800world\udfff", "Hello world"),  # lone surrogates: no text at all
        ("a\ufffeb\uffffc\ufdd0d", "abcd"),  # noncharacters
        ("pri\ue000vate \U000f0000use", "private use"),
        ("co\u00adoperate \u202eright\u2066 to left", "cooperate right to left"),  # invisible marks
        ("Great job\U0001f44d\U0001f3fd! \U0001f1e9\U0001f1ea", "Great job !"),  # emoji, flags
        ("Press #\ufe0f\u20e3 now \u2764\ufe0f", "Press # now"),  # keycap, variation selector
        ("\u00a9 2024 Acme\u2122", "\u00a9 2024 Acme\u2122"),  # letterlike signs are words
        ("e\u0301 = \u00e9", "\u00e9 = \u00e9"),  # NFC
        ("Vi\u1ec7t e\u0302\u0323", "Vi\u1ec7t \u1ec7"),  # real diacritic stacks stay
        ("Z" + "\u0336\u0317\u0353" * 10 + "algo", "Zalgo"),  # a flood of marks: the letter alone
        ("\u0301" * 50 + "x", "x"),
        ("Sooooooo gooood!!!!!!!", "Sooo goood!!!"),
        ("x" * 5000, "xxx"),
        ("hahahahahaha " + "ab" * 100, "hahaha ababab"),
        ("Schifffahrt, www.example.com, III, Mississippi", "Schifffahrt, www.example.com, III, Mississippi"),
        ("1000000 and 7777777777777777", "1000000 and 7777777777777777"),  # digits are numbers
        ('Wait...... "what?!?!?!?!")', 'Wait... "what?!?!'),  # a run of signs: its first four
        ("====>>>>", "===>"),
    ],
)
def test_clean_up_per_class(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def test_spoken_length_weighs_what_takes_longer_to_say() -> None:
    assert spoken_length("Hello world.") == len("Hello world.")
    assert spoken_length("中文") == 2 * WIDE_CHAR_WEIGHT
    assert spoken_length("# %") == 2 * SIGN_WEIGHT + 1
    assert spoken_length('Yes, (quoted) "words"; done!') == len('Yes, (quoted) "words"; done!')


def test_sentences_keep_their_punctuation() -> None:
    assert split_sentences("Hi there! How are you? I am fine. Really…") == [
        "Hi there!",
        "How are you?",
        "I am fine.",
        "Really…",
    ]


def test_abbreviations_and_initials_do_not_end_a_sentence() -> None:
    text = "Dr. Smith met Mr. J. R. Jones at 5 p.m. today. They talked, e.g. about work."
    assert split_sentences(text) == [
        "Dr. Smith met Mr. J. R. Jones at 5 p.m. today.",
        "They talked, e.g. about work.",
    ]


def test_closing_quotes_stay_with_their_sentence() -> None:
    assert split_sentences('He said "stop." Then he left.') == ['He said "stop."', "Then he left."]


def test_cjk_full_stops_split() -> None:
    assert split_sentences("你好。今天天气很好！") == ["你好。", "今天天气很好！"]


@pytest.mark.parametrize("limit", [20, 50, 120, 250])
def test_long_sentences_are_cut_under_the_limit_without_cutting_words(limit: int) -> None:
    text = (
        "This is a rather long sentence, which goes on and on; it has clauses: many of them, "
        "and it never seems to stop because the writer likes commas and semicolons a great deal. "
        "Short one. Another sentence without any clause breaks at all that runs past the limit easily"
    )
    segments = split_for_engine(text, limit)
    assert all(len(segment) <= limit for segment in segments)
    assert " ".join(segments).split() == text.split(), "no word lost, cut or reordered"


def test_clause_breaks_are_preferred_to_word_breaks() -> None:
    segments = split_for_engine("alpha beta gamma, delta epsilon zeta, eta theta iota.", 25)
    assert segments == ["alpha beta gamma,", "delta epsilon zeta,", "eta theta iota."]


def test_a_word_longer_than_the_limit_is_split_rather_than_dropped() -> None:
    url = "https://example.com/" + "x" * 60
    segments = split_for_engine(f"Visit {url} now.", 30)
    assert all(len(s) <= 30 for s in segments)
    assert "".join(segments).replace(" ", "") == f"Visit{url}now."


def test_a_long_opening_sentence_is_cut_after_its_first_clause() -> None:
    text = "Thank you for calling the support line, this is call number seven, how can I help you today?"
    assert split_first_clause(text, 40) == [
        "Thank you for calling the support line,",
        "this is call number seven, how can I help you today?",
    ]
    # However short the clause: the rest is rendered while it plays.
    assert split_first_clause("Hello, your appointment is confirmed for nine tomorrow.", 40) == [
        "Hello,",
        "your appointment is confirmed for nine tomorrow.",
    ]
    assert split_first_clause("Short opening, kept whole.", 40) == ["Short opening, kept whole."]
    assert split_first_clause(text, 0) == [text]  # 0: never cut
    no_clause = "A long opening sentence without any comma in it that goes on past the limit."
    assert split_first_clause(no_clause, 40) == [no_clause]
    # A break with nothing spoken before it, or nothing after it, is no clause.
    assert split_first_clause("— a dash first and then a long sentence without any break.", 20) == [
        "— a dash first and then a long sentence without any break."
    ]
    assert split_first_clause("A sentence that ends on a dash and nothing after it -", 20) == [
        "A sentence that ends on a dash and nothing after it -"
    ]


def test_sentence_ends_are_told_from_clause_cuts() -> None:
    assert (
        ends_with_sentence_punctuation("Done.")
        and ends_with_sentence_punctuation('He said "stop."')
        and ends_with_sentence_punctuation("好。")
    )
    assert not ends_with_sentence_punctuation("the first clause,") and not ends_with_sentence_punctuation(
        "no punctuation"
    )
