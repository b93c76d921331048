"""Text normalisation per language and SSML say-as conversions."""

from __future__ import annotations

import pytest

from sentiric_tts.synthesis.normalize import normalize_text, say_as


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        # numbers
        ("I have 3 cats", "en", "I have three cats"),
        ("It is 1,234.5 m", "en", "It is one thousand, two hundred and thirty-four point five metres"),
        ("Es sind 1.234,5 kg", "de", "Es sind eintausendzweihundertvierunddreißig Komma fünf Kilogramm"),
        ("Il y a 1 234,5 km", "fr", "Il y a mille deux cent trente-quatre virgule cinq kilomètres"),
        ("Son 3,5 kg", "es", "Son tres coma cinco kilogramos"),
        ("It was -3 today", "en", "It was minus three today"),
        ("pages 10-20", "en", "pages ten-twenty"),
        ("agent 007", "en", "agent zero zero seven"),
        # ordinals
        ("the 1st and 22nd", "en", "the first and twenty-second"),
        ("le 1er et la 1re, 2e", "fr", "le premier et la première, deuxième"),
        ("el 1º y la 2ª", "es", "el primero y la segunda"),
        ("am 3. März", "de", "am dritten März"),
        ("Ich habe 3. Dann", "de", "Ich habe drei. Dann"),  # "3." is not an ordinal here
        # dates and times
        ("On 2024-03-05.", "en", "On March fifth, twenty twenty-four."),
        ("Le 2024-05-01", "fr", "Le premier mai deux mille vingt-quatre"),
        ("El 2024-03-05", "es", "El cinco de marzo de dos mil veinticuatro"),
        ("Am 2024-03-05", "de", "Am fünfte März zweitausendvierundzwanzig"),
        ("at 14:30 or 2:05 pm", "en", "at fourteen thirty or two oh five p m"),
        ("um 14:30 Uhr", "de", "um vierzehn Uhr dreißig Uhr"),
        ("à 14:30", "fr", "à quatorze heures trente"),
        ("a las 10:05", "es", "a las diez y cinco"),
        ("2024-13-45 stays", "en", "two thousand and twenty-four-thirteen-forty-five stays"),
        # money, percent, temperature
        ("$5.20 and €3 and £10", "en", "five dollars and twenty cents and three euros and ten pounds"),
        ("5 EUR 50%", "en", "five euros fifty percent"),
        ("1.234,50 €", "de", "eintausendzweihundertvierunddreißig Euro und fünfzig Cent"),
        ("3 € et 50 %", "fr", "trois euros et cinquante pour cent"),
        ("20°C and -5 °F", "en", "twenty degrees Celsius and minus five degrees Fahrenheit"),
        ("1 °C", "de", "eins Grad Celsius"),
        ("%50 indirim", "tr", "yüzde elli indirim"),
        # units
        (
            "100 km/h, 60 mph, 1 l, 5 ml, 2 g",
            "en",
            "one hundred kilometres per hour, sixty miles per hour, one litre, five millilitres, two grams",
        ),
        ("1 km", "es", "un kilómetro"),
        # abbreviations
        ("Dr. Smith lives on Elm Dr. Next", "en", "Doctor Smith lives on Elm Dr. Next"),
        ("fruit, e.g. apples, etc. and more", "en", "fruit, for example apples, et cetera and more"),
        ("apples etc.", "en", "apples et cetera."),
        ("Obst z.B. Äpfel usw.", "de", "Obst zum Beispiel Äpfel und so weiter."),
    ],
)
def test_normalize(text: str, language: str, expected: str) -> None:
    assert normalize_text(text, language) == expected


@pytest.mark.parametrize(
    "text",
    ["5min", "I'm here", "M&M", "5 ms", "5 m/s", "5m2", "room 5g4", "v1.2.3", "abc123def", "H2O", "x=5mm3"],
)
def test_units_never_fire_inside_words(text: str) -> None:
    out = normalize_text(text, "en")
    for fragment in ("metre", "gram", "litre", "millimetre"):
        assert fragment not in out
    assert "I'm" in out or "I'm" not in text
    assert "M&M" in out or "M&M" not in text


def test_five_metres_but_five_min() -> None:
    assert normalize_text("5 m", "en") == "five metres"
    assert normalize_text("5min", "en") == "5min"
    assert normalize_text("5 min", "en") == "five min"


@pytest.mark.parametrize(
    ("language", "text"),
    [("zh-cn", "价格 5 元 2024-03-05"), ("hi", "कीमत 5 रुपये 2024-03-05"), ("xx", "价格 5 元 2024-03-05")],
)
def test_unsupported_languages_are_left_alone(language: str, text: str) -> None:
    assert normalize_text(f"  {text.replace(' ', '   ')} ", language) == text


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("We flew to Москва, then to 北京.", "en", "We flew to Moskva, then to Bei Jing."),
        ("Das Café in Αθήνα", "de", "Das Café in Athina"),
        ("Привет, iPhone и 東京", "ru", "Привет, iPhone и Dong Jing"),
        ("東京で会いましょう", "ja", "東京で会いましょう"),  # Han and kana are Japanese
        ("서울 東京", "ko", "서울 東京"),
        ("Hi中文x", "en", "Hi Zhong Wen x"),  # spaced from the letters around them
    ],
)
def test_letters_of_other_scripts_are_spelled_in_latin(text: str, language: str, expected: str) -> None:
    assert normalize_text(text, language) == expected


def test_languages_of_unknown_script_keep_every_letter() -> None:
    assert normalize_text("Москва 北京", "xx") == "Москва 北京"


def test_regional_codes_map_to_their_language() -> None:
    assert normalize_text("3", "en-US") == "three"
    assert normalize_text("3", "pt-BR") == "três"


@pytest.mark.parametrize(
    ("text", "kind", "fmt", "language", "expected"),
    [
        ("1234", "cardinal", None, "en", "one thousand, two hundred and thirty-four"),
        ("1234", "number", None, "de", "eintausendzweihundertvierunddreißig"),
        ("3", "ordinal", None, "en", "third"),
        ("3rd", "ordinal", None, "en", "third"),
        ("3", "ordinal", None, "es", "tercero"),
        ("ABC1", "characters", None, "en", "A B C one"),
        ("hi", "spell-out", None, "en", "h i"),
        ("123", "digits", None, "en", "one two three"),
        ("+1 555-1234", "telephone", None, "en", "plus one, five five five, one two three four"),
        ("03/05/2024", "date", "mdy", "en", "March fifth, twenty twenty-four"),
        ("05/03/2024", "date", "dmy", "en", "March fifth, twenty twenty-four"),
        ("2024-03-05", "date", None, "en", "March fifth, twenty twenty-four"),
        ("2024-03-05", "date", "ymd", "fr", "cinq mars deux mille vingt-quatre"),
        ("05.03.2024", "date", "dmy", "es", "cinco de marzo de dos mil veinticuatro"),
        ("03/05", "date", "md", "en", "March fifth"),
        ("03/2024", "date", "my", "en", "March twenty twenty-four"),
        ("1998", "date", "y", "en", "nineteen ninety-eight"),
        ("5/3/98", "date", "dmy", "de", "fünfte März neunzehnhundertachtundneunzig"),
        ("14:30", "time", None, "en", "fourteen thirty"),
        ("2:30 pm", "time", None, "en", "two thirty p m"),
        ("2pm", "time", None, "en", "two p m"),
        ("14:30", "time", "hms24", "de", "vierzehn Uhr dreißig"),
    ],
)
def test_say_as(text: str, kind: str, fmt: str | None, language: str, expected: str) -> None:
    assert say_as(text, kind, format=fmt, language=language) == expected


def test_say_as_unknown_type_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="supported: cardinal, number, ordinal"):
        say_as("x", "currency-ish")


def test_say_as_bad_date_format() -> None:
    with pytest.raises(ValueError, match="date format"):
        say_as("03/05/2024", "date", format="qqq")


def test_say_as_unparsable_text_falls_back_to_normalisation() -> None:
    assert say_as("about 5", "cardinal") == "about five"
    assert say_as("99/99/2024", "date", format="mdy") != ""
