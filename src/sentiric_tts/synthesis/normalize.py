"""Per-language text normalisation: numbers, dates, times, money, units, a few abbreviations.

Speech engines read digits and symbols poorly or not at all, so they are turned into words with
`num2words` before synthesis. Every rule matches whole tokens only (a unit never fires inside a
word: "5 m" becomes "five metres", "5min", "I'm", "M&M" stay). A language that num2words does not
know (XTTS's zh-cn and hi) is returned with only whitespace tidied: guessing would be worse.

num2words (0.5.14) covers en es fr de it pt pl tr ru nl cs ar hu ko ja; ordinals are missing for cs,
and its Arabic currency names are wrong, so those fall back to plainer readings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import regex
from anyascii import anyascii
from num2words import CONVERTER_CLASSES, num2words

from sentiric_tts.synthesis.text import clean_text


@dataclass(frozen=True)
class _Lang:
    code: str  # num2words language code
    decimal: str  # decimal separator in written numbers
    thousands: str  # characters that may group thousands


# Decimal comma languages group thousands with "." or a (narrow) space; English the reverse.
_COMMA_DECIMAL = {"de", "es", "fr", "it", "pt", "pl", "tr", "ru", "nl", "cs", "hu"}
_SPACE_GROUPING = {"fr", "pl", "ru", "cs", "hu"}


def _lang(language: str) -> _Lang | None:
    """num2words settings for an XTTS-style language code ("en", "pt-BR", "zh-cn"), or None."""
    code = language.strip().lower().replace("-", "_")
    if code not in CONVERTER_CLASSES:
        code = code.split("_")[0]
        if code not in CONVERTER_CLASSES:
            return None
    base = code.split("_")[0]
    if base in _COMMA_DECIMAL:
        thousands = " \u00a0\u202f" if base in _SPACE_GROUPING else "."
        return _Lang(code, ",", thousands)
    return _Lang(code, ".", ",")


def _words(value: int | Decimal, lang: _Lang, to: str = "cardinal") -> str | None:
    """num2words, or None where the language lacks that conversion."""
    try:
        return str(num2words(value, lang=lang.code, to=to))
    except (NotImplementedError, TypeError, ValueError, OverflowError, InvalidOperation):
        return None


def _cardinal(value: int | Decimal, lang: _Lang) -> str:
    return _words(value, lang) or str(value)


def _ordinal(value: int, lang: _Lang) -> str:
    return _words(value, lang, "ordinal") or _cardinal(value, lang)


def _year(value: int, lang: _Lang) -> str:
    # num2words' Japanese "year" is an era name (令和六年): a plain number is safer.
    if lang.code == "ja":
        return _cardinal(value, lang)
    return _words(value, lang, "year") or _cardinal(value, lang)


def _digit_words(digits: str, lang: _Lang | None) -> str:
    return " ".join(_cardinal(int(d), lang) if lang else d for d in digits if d.isdigit())


# --- numbers -------------------------------------------------------------------------------


def _number_pattern(lang: _Lang) -> str:
    """A written number: optional sign, grouped or plain integer part, optional decimals."""
    sep = re.escape(lang.thousands) if len(lang.thousands) == 1 else f"[{lang.thousands}]"
    dec = re.escape(lang.decimal)
    return rf"(?:\d{{1,3}}(?:{sep}\d{{3}})+|\d+)(?:{dec}\d+)?"


def _parse_number(text: str, lang: _Lang) -> Decimal | None:
    cleaned = text
    for ch in lang.thousands:
        cleaned = cleaned.replace(ch, "")
    cleaned = cleaned.replace(lang.decimal, ".")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def _number_words(text: str, lang: _Lang, sign: str = "") -> str:
    digits = re.sub(r"\D", "", text)
    # Leading zeros ("007") and very long plain runs (card numbers) are read digit by digit.
    if (len(digits) > 1 and text[0] == "0" and lang.decimal not in text) or (
        len(digits) > 15 and text.isdigit()
    ):
        return _digit_words(text, lang)
    value = _parse_number(text, lang)
    if value is None:
        return text
    if sign == "-":
        value = -value
    if value == value.to_integral_value() and lang.decimal not in text:
        return _cardinal(int(value), lang)
    words = _cardinal(value, lang)
    # num2words' Spanish says "punto", but decimal-comma Spain says "coma".
    return words.replace(" punto ", " coma ") if lang.code == "es" else words


# --- per-language vocabularies -------------------------------------------------------------

_MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"),
    "it": ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre", "novembre", "dicembre"),
    "pt": ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro", "novembro", "dezembro"),
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober", "november", "december"),
}  # fmt: skip

_PERCENT = {
    "en": "percent", "de": "Prozent", "fr": "pour cent", "es": "por ciento", "it": "per cento",
    "pt": "por cento", "nl": "procent", "pl": "procent", "cs": "procent", "ru": "процентов",
    "hu": "százalék", "tr": "yüzde", "ar": "بالمئة", "ko": "퍼센트", "ja": "パーセント",
}  # fmt: skip

_DEGREES = {
    "en": ("degree", "degrees", "Celsius", "Fahrenheit"),
    "de": ("Grad", "Grad", "Celsius", "Fahrenheit"),
    "fr": ("degré", "degrés", "Celsius", "Fahrenheit"),
    "es": ("grado", "grados", "centígrados", "Fahrenheit"),
    "it": ("grado", "gradi", "Celsius", "Fahrenheit"),
    "pt": ("grau", "graus", "Celsius", "Fahrenheit"),
    "nl": ("graad", "graden", "Celsius", "Fahrenheit"),
}

# Unit symbol -> (singular, plural) per language; longest symbols first so "km/h" beats "km".
_UNIT_SYMBOLS = ("km/h", "mph", "km", "kg", "cm", "mm", "ml", "m", "g", "l")
_UNITS: dict[str, dict[str, tuple[str, str]]] = {
    "en": {"km/h": ("kilometre per hour", "kilometres per hour"), "mph": ("mile per hour", "miles per hour"),
           "km": ("kilometre", "kilometres"), "kg": ("kilogram", "kilograms"), "cm": ("centimetre", "centimetres"),
           "mm": ("millimetre", "millimetres"), "ml": ("millilitre", "millilitres"), "m": ("metre", "metres"),
           "g": ("gram", "grams"), "l": ("litre", "litres")},
    "de": {"km/h": ("Kilometer pro Stunde",) * 2, "mph": ("Meile pro Stunde", "Meilen pro Stunde"),
           "km": ("Kilometer",) * 2, "kg": ("Kilogramm",) * 2, "cm": ("Zentimeter",) * 2, "mm": ("Millimeter",) * 2,
           "ml": ("Milliliter",) * 2, "m": ("Meter",) * 2, "g": ("Gramm",) * 2, "l": ("Liter",) * 2},
    "fr": {"km/h": ("kilomètre par heure", "kilomètres par heure"), "mph": ("mile par heure", "miles par heure"),
           "km": ("kilomètre", "kilomètres"), "kg": ("kilogramme", "kilogrammes"), "cm": ("centimètre", "centimètres"),
           "mm": ("millimètre", "millimètres"), "ml": ("millilitre", "millilitres"), "m": ("mètre", "mètres"),
           "g": ("gramme", "grammes"), "l": ("litre", "litres")},
    "es": {"km/h": ("kilómetro por hora", "kilómetros por hora"), "mph": ("milla por hora", "millas por hora"),
           "km": ("kilómetro", "kilómetros"), "kg": ("kilogramo", "kilogramos"), "cm": ("centímetro", "centímetros"),
           "mm": ("milímetro", "milímetros"), "ml": ("mililitro", "mililitros"), "m": ("metro", "metros"),
           "g": ("gramo", "gramos"), "l": ("litro", "litros")},
    "it": {"km/h": ("chilometro orario", "chilometri orari"), "km": ("chilometro", "chilometri"),
           "kg": ("chilogrammo", "chilogrammi"), "cm": ("centimetro", "centimetri"), "mm": ("millimetro", "millimetri"),
           "ml": ("millilitro", "millilitri"), "m": ("metro", "metri"), "g": ("grammo", "grammi"), "l": ("litro", "litri")},
    "pt": {"km/h": ("quilómetro por hora", "quilómetros por hora"), "km": ("quilómetro", "quilómetros"),
           "kg": ("quilograma", "quilogramas"), "cm": ("centímetro", "centímetros"), "mm": ("milímetro", "milímetros"),
           "ml": ("mililitro", "mililitros"), "m": ("metro", "metros"), "g": ("grama", "gramas"), "l": ("litro", "litros")},
    "nl": {"km/h": ("kilometer per uur",) * 2, "km": ("kilometer",) * 2, "kg": ("kilogram",) * 2,
           "cm": ("centimeter",) * 2, "mm": ("millimeter",) * 2, "ml": ("milliliter",) * 2, "m": ("meter",) * 2,
           "g": ("gram",) * 2, "l": ("liter",) * 2},
}  # fmt: skip

# Currency: symbol/code -> ISO code; names (major singular, plural, minor singular, plural, joiner).
_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₺": "TRY", "₽": "RUB", "₹": "INR"}
_CURRENCY_CODES = ("USD", "EUR", "GBP", "JPY", "TRY", "RUB", "CHF", "INR")
_CURRENCY_NAMES: dict[str, dict[str, tuple[str, str, str, str, str]]] = {
    "en": {"USD": ("dollar", "dollars", "cent", "cents", "and"), "EUR": ("euro", "euros", "cent", "cents", "and"),
           "GBP": ("pound", "pounds", "penny", "pence", "and"), "JPY": ("yen", "yen", "", "", "and"),
           "CHF": ("franc", "francs", "centime", "centimes", "and"), "TRY": ("lira", "lira", "kurus", "kurus", "and"),
           "RUB": ("rouble", "roubles", "kopeck", "kopecks", "and"), "INR": ("rupee", "rupees", "paisa", "paise", "and")},
    "de": {"USD": ("Dollar", "Dollar", "Cent", "Cent", "und"), "EUR": ("Euro", "Euro", "Cent", "Cent", "und"),
           "GBP": ("Pfund", "Pfund", "Penny", "Pence", "und"), "JPY": ("Yen", "Yen", "", "", "und"),
           "CHF": ("Franken", "Franken", "Rappen", "Rappen", "und")},
    "fr": {"USD": ("dollar", "dollars", "cent", "cents", "et"), "EUR": ("euro", "euros", "centime", "centimes", "et"),
           "GBP": ("livre", "livres", "penny", "pence", "et"), "JPY": ("yen", "yens", "", "", "et"),
           "CHF": ("franc", "francs", "centime", "centimes", "et")},
    "es": {"USD": ("dólar", "dólares", "centavo", "centavos", "con"), "EUR": ("euro", "euros", "céntimo", "céntimos", "con"),
           "GBP": ("libra", "libras", "penique", "peniques", "con"), "JPY": ("yen", "yenes", "", "", "con")},
    "it": {"USD": ("dollaro", "dollari", "centesimo", "centesimi", "e"), "EUR": ("euro", "euro", "centesimo", "centesimi", "e"),
           "GBP": ("sterlina", "sterline", "penny", "pence", "e")},
    "pt": {"USD": ("dólar", "dólares", "cêntimo", "cêntimos", "e"), "EUR": ("euro", "euros", "cêntimo", "cêntimos", "e"),
           "GBP": ("libra", "libras", "péni", "pence", "e")},
    "nl": {"USD": ("dollar", "dollar", "cent", "cent", "en"), "EUR": ("euro", "euro", "cent", "cent", "en"),
           "GBP": ("pond", "pond", "penny", "pence", "en")},
}  # fmt: skip

_PLUS = {"en": "plus", "de": "plus", "fr": "plus", "es": "más", "it": "più", "pt": "mais", "nl": "plus"}


def _base(lang: _Lang) -> str:
    return lang.code.split("_")[0]


def _before_noun(words: str, lang: _Lang) -> str:
    """Spanish shortens "uno" before a noun: "un kilómetro", "veintiún euros" (masculine)."""
    if _base(lang) == "es":
        if words == "uno" or words.endswith(" uno"):
            return words[:-1]
        if words.endswith("veintiuno"):
            return words[:-3] + "ún"
    return words


# --- dates and times -----------------------------------------------------------------------


def _date_words(year: int | None, month: int | None, day: int | None, lang: _Lang) -> str:
    """A date read the way the language says it; parts left out of the format are None."""
    base = _base(lang)
    months = _MONTHS.get(base)
    month_word = months[month - 1] if months and month else (_cardinal(month, lang) if month else "")
    year_word = _year(year, lang) if year is not None else ""
    if base == "en":
        day_word = _ordinal(day, lang) if day else ""
        head = " ".join(p for p in (month_word, day_word) if p)
        return (
            f"{head}, {year_word}" if day_word and year_word else " ".join(p for p in (head, year_word) if p)
        )
    if base == "fr":
        day_word = ("premier" if day == 1 else _cardinal(day, lang)) if day else ""
    elif base == "de":
        day_word = _ordinal(day, lang) if day else ""
    else:
        day_word = _cardinal(day, lang) if day else ""
    if base in ("es", "pt"):  # "cinco de marzo de dos mil veinticuatro"
        return " de ".join(p for p in (day_word, month_word, year_word) if p)
    return " ".join(p for p in (day_word, month_word, year_word) if p)


def _valid_date(year: int | None, month: int | None, day: int | None) -> bool:
    return (
        (month is None or 1 <= month <= 12)
        and (day is None or 1 <= day <= 31)
        and (year is None or 0 < year < 10000)
    )


def _time_words(hour: int, minute: int, second: int | None, meridiem: str | None, lang: _Lang) -> str:
    base = _base(lang)
    h = _cardinal(hour, lang)
    if base == "en":
        if minute == 0 and meridiem is None and second is None:
            words = "midnight" if hour == 0 else f"{h} hundred"
        elif minute == 0:
            words = h
        elif minute < 10:
            words = f"{h} oh {_cardinal(minute, lang)}"
        else:
            words = f"{h} {_cardinal(minute, lang)}"
        if second is not None:
            words += f" and {_cardinal(second, lang)} seconds"
        return f"{words} {' '.join(meridiem)}" if meridiem else words
    if base == "es" and second is None and meridiem is None:
        return f"{h} y {_cardinal(minute, lang)}" if minute else h
    hour_word = {"de": "Uhr", "fr": "heures" if hour != 1 else "heure", "nl": "uur"}.get(base)
    parts = [h, hour_word] if hour_word else [h]
    if minute or not hour_word:
        parts.append(_cardinal(minute, lang))
    if second is not None:
        parts.append(_cardinal(second, lang))
    if meridiem:
        parts.append(" ".join(meridiem))
    return " ".join(p for p in parts if p)


# --- rules ---------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"(?<![\w./-])(\d{4})-(\d{2})-(\d{2})(?![\w/-]|[.,:]\d)")
_TIME = re.compile(
    r"(?<![\w.:])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?:\s?([AaPp])\.?\s?[Mm]\.?(?!\w))?(?![\w:]|[.,]\d)"
)


def _sub_dates(text: str, lang: _Lang) -> str:
    def repl(m: re.Match[str]) -> str:
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
        return _date_words(y, mo, d, lang) if _valid_date(y, mo, d) else m[0]

    return _ISO_DATE.sub(repl, text)


def _sub_times(text: str, lang: _Lang) -> str:
    def repl(m: re.Match[str]) -> str:
        hour, minute = int(m[1]), int(m[2])
        second = int(m[3]) if m[3] else None
        meridiem = (m[4].lower() + "m") if m[4] else None
        if meridiem and not 1 <= hour <= 12:
            return m[0]
        return _time_words(hour, minute, second, meridiem, lang)

    return _TIME.sub(repl, text)


def _money_words(amount: str, code: str, lang: _Lang) -> str | None:
    value = _parse_number(amount, lang)
    if value is None:
        return None
    names = _CURRENCY_NAMES.get(_base(lang), {}).get(code)
    if names is None:
        # num2words' currency names are only right for these (Arabic says "riyal" for every
        # currency, Turkish "lira", Hungarian falls back to English); elsewhere the number is
        # read and the symbol left as written.
        if _base(lang) not in ("pl", "ru", "cs"):
            return None
        words = _words(Decimal(value) + Decimal("0.00"), lang, "currency")
        # num2words always reads the minor unit; drop ", zero cents" from a whole amount.
        return words.rsplit(", ", 1)[0] if words and value % 1 == 0 else words
    major_1, major_n, minor_1, minor_n, joiner = names
    major = int(value)
    minor = int((value - major) * 100)
    words = f"{_before_noun(_cardinal(major, lang), lang)} {major_1 if major == 1 else major_n}"
    if minor and minor_1:
        minor_words = _before_noun(_cardinal(minor, lang), lang)
        words += f" {joiner} {minor_words} {minor_1 if minor == 1 else minor_n}"
    return words


def _sub_money(text: str, lang: _Lang) -> str:
    num = _number_pattern(lang)
    symbols = "".join(re.escape(s) for s in _CURRENCY_SYMBOLS)
    codes = "|".join(_CURRENCY_CODES)
    before = re.compile(rf"(?<![\w.,])(?:([{symbols}])\s?|({codes})\s)({num})(?![\w]|[.,]\d)")
    after = re.compile(rf"(?<![\w.,])({num})\s?(?:([{symbols}])|({codes})(?!\w))")

    def repl_before(m: re.Match[str]) -> str:
        code = _CURRENCY_SYMBOLS.get(m[1] or "", m[2] or "")
        return _money_words(m[3], code, lang) or m[0]

    def repl_after(m: re.Match[str]) -> str:
        code = _CURRENCY_SYMBOLS.get(m[2] or "", m[3] or "")
        return _money_words(m[1], code, lang) or m[0]

    # Amounts with a trailing symbol first, so "5 EUR 50%" never reads as "EUR 50".
    return before.sub(repl_before, after.sub(repl_after, text))


def _signed(num: str) -> str:
    # A minus sign only at the start of a token ("-5 °C"), never inside "10-20".
    return rf"(?<![\w.,])(-|−)?({num})"


def _sub_measures(text: str, lang: _Lang) -> str:
    """Temperatures, percentages and units after a number."""
    base = _base(lang)
    num = _number_pattern(lang)

    def amount(sign: str | None, digits: str) -> tuple[str, bool]:
        value = _parse_number(digits, lang)
        return _before_noun(_number_words(digits, lang, "-" if sign else ""), lang), value == 1 and not sign

    degrees = _DEGREES.get(base)
    if degrees:
        temp = re.compile(_signed(num) + r"\s?°\s?([CF])(?!\w)")

        def repl_temp(m: re.Match[str]) -> str:
            words, one = amount(m[1], m[2])
            scale = degrees[2] if m[3] == "C" else degrees[3]
            return f"{words} {degrees[0] if one else degrees[1]} {scale}"

        text = temp.sub(repl_temp, text)
    if base == "tr":  # Turkish writes the sign first: "%50" is "yüzde elli"
        text = re.sub(
            r"(?<![\w%])%\s?(" + num + r")(?![\w]|[.,]\d)", lambda m: f"yüzde {amount(None, m[1])[0]}", text
        )
    percent_word = _PERCENT.get(base)
    if percent_word:
        pct = re.compile(_signed(num) + r"\s?%")

        def repl_pct(m: re.Match[str]) -> str:
            words, _ = amount(m[1], m[2])
            return f"yüzde {words}" if base == "tr" else f"{words} {percent_word}"

        text = pct.sub(repl_pct, text)
    units = _UNITS.get(base)
    if units:
        symbols = "|".join(re.escape(s) for s in _UNIT_SYMBOLS if s in units)
        # The unit must end the token: "5 m" but not "5 min", "5 ms", "5m2", "5 m/s".
        unit_re = re.compile(_signed(num) + rf"\s?({symbols})(?![\w/])")

        def repl_unit(m: re.Match[str]) -> str:
            words, one = amount(m[1], m[2])
            singular, plural = units[m[3]]
            return f"{words} {singular if one else plural}"

        text = unit_re.sub(repl_unit, text)
    return text


_ORDINAL_RULES: dict[str, re.Pattern[str]] = {
    "en": re.compile(r"(?<![\w.,])(\d+)(?:st|nd|rd|th)(?!\w)", re.IGNORECASE),
    "fr": re.compile(r"(?<![\w.,])(\d+)(er|re|e|ème|eme)(?!\w)"),
    "es": re.compile(r"(?<![\w.,])(\d+)\.?([ºª°])(?!\w)"),
    "it": re.compile(r"(?<![\w.,])(\d+)\.?([ºª°])(?!\w)"),
    "pt": re.compile(r"(?<![\w.,])(\d+)\.?([ºª°])(?!\w)"),
    # German "3." is only safely an ordinal before a month name ("am 3. März").
    "de": re.compile(r"(?<![\w.,])(\d{1,2})\.(?=\s+(?:" + "|".join(_MONTHS["de"]) + r")\b)"),
}


def _sub_ordinals(text: str, lang: _Lang) -> str:
    base = _base(lang)
    rule = _ORDINAL_RULES.get(base)
    if rule is None:
        return text

    def repl(m: re.Match[str]) -> str:
        value = int(m[1])
        if base == "fr" and value == 1:
            return "première" if m[2] == "re" else "premier"
        words = _ordinal(value, lang)
        if base == "de" and re.search(
            r"(?:^|\s)(?:am|vom|zum|bis zum|dem|den)\s*$", m.string[: m.start()], re.I
        ):
            words += "n"  # dative after "am 3. März": "am dritten März"
        if len(m.groups()) > 1 and m[2] == "ª" and words.endswith("o"):
            words = words[:-1] + "a"  # feminine ordinal in es/it/pt
        return words

    return rule.sub(repl, text)


def _sub_numbers(text: str, lang: _Lang) -> str:
    num = _number_pattern(lang)
    rule = re.compile(rf"(?:(?<=\s)|^)(-|−)?(?=\d)({num})(?!\w|[.,]\d)|(?<![\w.,])({num})(?!\w|[.,]\d)")

    def repl(m: re.Match[str]) -> str:
        if m[2]:
            return _number_words(m[2], lang, "-" if m[1] else "")
        return _number_words(m[3], lang)

    return rule.sub(repl, text)


def _capitalised_before(text: str, index: int) -> bool:
    """Whether a capitalised word ends just before `index` ("Elm Dr." is Drive, not Doctor)."""
    prev = text[:index].rstrip()
    word = prev.rsplit(" ", 1)[-1] if prev else ""
    return bool(word) and word[0].isupper() and word.isalpha()


def _keep_period(text: str, end: int) -> str:
    """Keep a sentence-ending period that an abbreviation like "etc." doubled as."""
    rest = text[end:]
    return "." if not rest.strip() or re.match(r"\s+[A-ZÄÖÜÀ-Ý]", rest) else ""


def _sub_abbreviations(text: str, lang: _Lang) -> str:
    base = _base(lang)
    if base == "en":
        text = re.sub(r"(?<!\w)e\.g\.(?!\w)", "for example", text)
        text = re.sub(r"(?<!\w)i\.e\.(?!\w)", "that is", text)
        text = re.sub(r"(?<!\w)etc\.", lambda m: "et cetera" + _keep_period(m.string, m.end()), text)
        text = re.sub(r"(?<!\w)Mrs\.(?=\s+[A-Z])", "Missus", text)
        text = re.sub(r"(?<!\w)Mr\.(?=\s+[A-Z])", "Mister", text)
        text = re.sub(
            r"(?<!\w)Dr\.(?=\s+[A-Z][a-z])",
            lambda m: m[0] if _capitalised_before(m.string, m.start()) else "Doctor",
            text,
        )
    elif base == "de":
        text = re.sub(r"(?<!\w)z\.\s?B\.(?!\w)", "zum Beispiel", text)
        text = re.sub(r"(?<!\w)usw\.", lambda m: "und so weiter" + _keep_period(m.string, m.end()), text)
        text = re.sub(r"(?<!\w)Nr\.(?=\s*\d)", "Nummer", text)
    elif base == "fr":
        text = re.sub(r"(?<!\w)Mme(?=\s+[A-Z])", "Madame", text)
        text = re.sub(r"(?<!\w)M\.(?=\s+[A-Z][a-z])", "Monsieur", text)
    elif base == "es":
        text = re.sub(r"(?<!\w)Sra\.(?=\s+[A-Z])", "señora", text)
        text = re.sub(r"(?<!\w)Sr\.(?=\s+[A-Z])", "señor", text)
    return text


_RULES: tuple[Callable[[str, _Lang], str], ...] = (
    _sub_abbreviations,
    _sub_dates,
    _sub_times,
    _sub_money,
    _sub_measures,
    _sub_ordinals,
    _sub_numbers,
)


# --- letters of other scripts --------------------------------------------------------------

# The scripts languages are written in besides Latin, which every engine reads (names as the
# `regex` module spells Unicode scripts). Languages missing here are left as written.
_LANGUAGES_BY_SCRIPTS: dict[tuple[str, ...], str] = {
    (): "af az ca cs cy da de en eo es et eu fi fr ga gl hr hu id is it lb lt lv ms mt nb nl nn no pl "
    "pt ro sk sl sq sv sw tl tr uz vi",
    ("Cyrillic",): "be bg kk ky mk mn ru sr tg uk",
    ("Arabic",): "ar fa ps ur",
    ("Devanagari",): "hi mr ne",
    ("Greek",): "el",
    ("Hebrew",): "he",
    ("Georgian",): "ka",
    ("Armenian",): "hy",
    ("Bengali",): "bn",
    ("Tamil",): "ta",
    ("Telugu",): "te",
    ("Thai",): "th",
    ("Han", "Bopomofo"): "zh",
    ("Han", "Hiragana", "Katakana"): "ja",
    ("Hangul", "Han"): "ko",
}
_SCRIPTS = {code: scripts for scripts, codes in _LANGUAGES_BY_SCRIPTS.items() for code in codes.split()}


@lru_cache(maxsize=64)
def _foreign_letters(language: str) -> regex.Pattern[str] | None:
    """Runs of letters (with their marks) in scripts `language` is not written in, or None when
    the language's scripts are unknown."""
    scripts = _SCRIPTS.get(language.strip().lower().replace("_", "-").split("-")[0])
    if scripts is None:
        return None
    own = "".join(rf"\p{{{script}}}" for script in ("Latin", "Common", "Inherited", *scripts))
    return regex.compile(rf"(?V1)(?:[\p{{L}}--[{own}]]\p{{M}}*)+")


def _transliterated(run: str) -> str:
    # A Han character is a syllable of its own: spaced, the pinyin reads as syllables, not as
    # one long word.
    return " ".join(anyascii(ch) for ch in run) if regex.match(r"\p{Han}", run) else anyascii(run)


def spell_foreign_letters(text: str, language: str) -> str:
    """Letters of scripts `language` is not written in, transliterated to Latin (anyascii): a
    voice reads "Moskva" where it would say "Cyrillic letter" for each letter of "Москва", or make
    noise of it."""
    pattern = None if text.isascii() else _foreign_letters(language)
    if pattern is None:
        return text

    def spelled(match: regex.Match[str]) -> str:
        before, after = match.string[match.start() - 1 : match.start()], match.string[match.end() :][:1]
        # Spaced from letters next to it only: "Москва," stays one word before its comma.
        return (
            (" " if before.isalnum() else "") + _transliterated(match[0]) + (" " if after.isalnum() else "")
        )

    return pattern.sub(spelled, text)


def normalize_text(text: str, language: str) -> str:
    """`text` with letters of other scripts transliterated and numbers, dates, times, money,
    units and a few abbreviations spelled out."""
    text = clean_text(text)
    spelled = spell_foreign_letters(text, language)
    if spelled is not text:
        text = clean_text(spelled)
    lang = _lang(language)
    if lang is None:
        return text
    for rule in _RULES:
        text = rule(text, lang)
    return " ".join(text.split())  # the rules insert words and spaces only


# --- SSML say-as ---------------------------------------------------------------------------

SAY_AS_TYPES = (
    "cardinal", "number", "ordinal", "characters", "spell-out", "digits", "telephone", "date", "time",
)  # fmt: skip
DATE_FORMATS = ("mdy", "dmy", "ymd", "ydm", "md", "dm", "ym", "my", "y", "m", "d")


def _spell(text: str, lang: _Lang | None) -> str:
    # Letters separated by spaces make engines name each one; digits become their words.
    out = [_cardinal(int(ch), lang) if ch.isdigit() and lang else ch for ch in text if not ch.isspace()]
    return " ".join(out)


def _say_date(text: str, fmt: str | None, lang: _Lang) -> str:
    parts = [p for p in re.split(r"[-/.\s]+", text.strip()) if p]
    if fmt is None:  # ISO order when the year leads, else the language's usual order
        fmt = "ymd" if parts and len(parts[0]) == 4 else "mdy" if _base(lang) == "en" else "dmy"
    fmt = fmt.lower()
    if fmt not in DATE_FORMATS:
        raise ValueError(f"unknown date format {fmt!r}; use one of {', '.join(DATE_FORMATS)}")
    fmt = fmt[: len(parts)] if len(parts) < len(fmt) else fmt
    if len(parts) != len(fmt) or not all(p.isdigit() for p in parts):
        return normalize_text(text, lang.code)
    fields = dict(zip(fmt, (int(p) for p in parts), strict=True))
    year = fields.get("y")
    if year is not None and len(parts[fmt.index("y")]) == 2:
        year += 2000 if year < 50 else 1900  # "24" -> 2024, "98" -> 1998
    month, day = fields.get("m"), fields.get("d")
    if not _valid_date(year, month, day):
        return normalize_text(text, lang.code)
    return _date_words(year, month, day, lang)


def _say_time(text: str, lang: _Lang) -> str:
    m = re.fullmatch(r"\s*(\d{1,2})(?:[:.h](\d{2}))?(?::(\d{2}))?\s*(?:([AaPp])\.?\s?[Mm]\.?)?\s*", text)
    if not m:
        return normalize_text(text, lang.code)
    hour, minute = int(m[1]), int(m[2] or 0)
    second = int(m[3]) if m[3] else None
    meridiem = (m[4].lower() + "m") if m[4] else None
    if hour > 23 or minute > 59 or (second is not None and second > 59):
        return normalize_text(text, lang.code)
    if meridiem and m[2] is None and _base(lang) == "en":
        return f"{_cardinal(hour, lang)} {' '.join(meridiem)}"
    return _time_words(hour, minute, second, meridiem, lang)


def say_as(text: str, interpret_as: str, *, format: str | None = None, language: str = "en") -> str:
    """`text` read as SSML `<say-as interpret-as=...>` asks; raises ValueError for unknown types."""
    kind = interpret_as.strip().lower()
    if kind not in SAY_AS_TYPES:
        raise ValueError(f"unsupported interpret-as {interpret_as!r}; supported: {', '.join(SAY_AS_TYPES)}")
    lang = _lang(language)
    text = clean_text(text)
    if kind in ("characters", "spell-out"):
        return _spell(text, lang)
    if lang is None:
        # Without number words, separating digits is the only help we can give.
        return _spell(text, None) if kind in ("digits", "telephone") else text
    if kind == "digits":
        return _digit_words(text, lang)
    if kind == "telephone":
        groups = re.findall(r"\d+", text)
        plus = _PLUS.get(_base(lang), "+") + " " if text.startswith("+") else ""
        # Commas between digit groups give the pauses people make when reading a number.
        return plus + ", ".join(_digit_words(g, lang) for g in groups) if groups else text
    if kind in ("cardinal", "number"):
        m = re.fullmatch(r"(-|−)?(" + _number_pattern(lang) + ")", text)
        return _number_words(m[2], lang, "-" if m[1] else "") if m else normalize_text(text, lang.code)
    if kind == "ordinal":
        m = re.fullmatch(r"(\d+)\s*(?:\.|st|nd|rd|th|er|re|e|ème|º|ª)?", text, re.IGNORECASE)
        return _ordinal(int(m[1]), lang) if m else normalize_text(text, lang.code)
    if kind == "date":
        return _say_date(text, format, lang)
    return _say_time(text, lang)
