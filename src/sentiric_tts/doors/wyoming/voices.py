"""What Home Assistant sees of our voices (`info`), and which voice a `synthesize` asks for.

Each of our voices is one Wyoming voice, named by its id, listing its languages as Home
Assistant groups them: `en_US` style. Our codes are ISO 639-1, some with a region (`en`,
`zh-cn`); a region we have is kept (`zh-cn` -> `zh_CN`), a bare code gets the region its
language is most often spoken with (`en` -> `en_US`), and a code we have no region for stays
bare. A request's language goes back through the catalogue, which reads `en_US`, `en-us` and
`en` alike.

A request names a voice by `name` (one of those ids), by `language` alone (that language's
voice: the default voice where it speaks it, else the first that does), or by `speaker`: our
voices have one speaker each, so a speaker is a voice id too, and it wins over `name`.
"""

from __future__ import annotations

from typing import Any

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from sentiric_tts import __version__
from sentiric_tts.engines.base import VoiceInfo
from sentiric_tts.failures import RequestError
from sentiric_tts.synthesis.catalogue import VoiceCatalogue
from sentiric_tts.voices.access import LibraryAccess

PROGRAM_NAME = "sentiric-tts"
PROJECT = Attribution(name="Sentiric", url="https://github.com/sentiric/sentiric-tts-coqui-service")
ATTRIBUTIONS = {
    "piper": Attribution(name="Piper (Open Home Foundation)", url="https://github.com/OHF-Voice/piper1-gpl"),
    "studio": Attribution(name="Coqui XTTS v2", url="https://huggingface.co/coqui/XTTS-v2"),
    "library": Attribution(name="Sentiric voice library", url=PROJECT.url),
}

# The region a bare language code is most often spoken with (Piper's voices use the same).
DEFAULT_REGIONS = {
    "ar": "JO",
    "ca": "ES",
    "cs": "CZ",
    "cy": "GB",
    "da": "DK",
    "de": "DE",
    "el": "GR",
    "en": "US",
    "es": "ES",
    "fa": "IR",
    "fi": "FI",
    "fr": "FR",
    "hi": "IN",
    "hu": "HU",
    "is": "IS",
    "it": "IT",
    "ja": "JP",
    "ka": "GE",
    "kk": "KZ",
    "ko": "KR",
    "lb": "LU",
    "lv": "LV",
    "ne": "NP",
    "nl": "NL",
    "no": "NO",
    "pl": "PL",
    "pt": "BR",
    "ro": "RO",
    "ru": "RU",
    "sk": "SK",
    "sl": "SI",
    "sr": "RS",
    "sv": "SE",
    "sw": "CD",
    "tr": "TR",
    "uk": "UA",
    "vi": "VN",
    "zh": "CN",
}


def wyoming_language(code: str) -> str:
    """Our language code in Home Assistant's `en_US` style."""
    primary, _, region = code.strip().replace("_", "-").lower().partition("-")
    if region:
        return f"{primary}_{region.upper()}"
    default = DEFAULT_REGIONS.get(primary)
    return f"{primary}_{default}" if default else primary


def describe(catalogue: VoiceCatalogue, access: LibraryAccess, engine_name: str) -> Info:
    voices = [
        TtsVoice(
            name=voice.id,
            attribution=ATTRIBUTIONS.get(voice.kind, PROJECT),
            installed=True,
            description=voice.description or voice.name,
            version=None,
            languages=list(dict.fromkeys(wyoming_language(code) for code in voice.languages)),
            speakers=None,
        )
        for voice in _default_first(catalogue, access)
    ]
    program = TtsProgram(
        name=PROGRAM_NAME,
        attribution=PROJECT,
        installed=True,
        description=f"Sentiric TTS ({engine_name})",
        version=__version__,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program])


def _default_first(catalogue: VoiceCatalogue, access: LibraryAccess) -> list[VoiceInfo]:
    voices = catalogue.voices(access)
    default = [v for v in voices if v.id == catalogue.default_voice]
    return default + [v for v in voices if v.id != catalogue.default_voice]


def requested_voice(
    catalogue: VoiceCatalogue, access: LibraryAccess, voice: Any
) -> tuple[str | None, str | None]:
    """(voice id, language) for a request's `voice` object; None: the service's default.
    RequestError when it is malformed or names no voice this service has."""
    if voice is None:
        return None, None
    if not isinstance(voice, dict):
        raise RequestError(
            '\'voice\' is an object: {"name": ...}, {"language": ...} or {"name", "speaker"}.',
            param="voice",
        )
    fields = {key: voice.get(key) for key in ("name", "language", "speaker")}
    for key, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise RequestError(f"'voice.{key}' is text.", param=f"voice.{key}")
    name = fields["speaker"] or fields["name"]
    language = fields["language"] or None
    if name:
        return name, language
    if language is None:
        return None, None
    return _voice_for_language(catalogue, access, language), language


def _voice_for_language(catalogue: VoiceCatalogue, access: LibraryAccess, language: str) -> str:
    speaking = []
    for voice in _default_first(catalogue, access):
        try:
            catalogue.resolve_language(language, voice)
        except RequestError:
            continue
        speaking.append(voice.id)
    if not speaking:
        languages = sorted({wyoming_language(code) for code in catalogue.languages()})
        raise RequestError(
            f"No voice speaks '{language}'. Available: {', '.join(languages)}.",
            param="voice.language",
            code="unsupported_language",
            allowed=languages,
        )
    return speaking[0]
