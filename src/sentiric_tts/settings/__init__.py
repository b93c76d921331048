"""Every setting of the service, typed, with its default, in groups (`settings.grpc.port`).

Read from environment variables prefixed `TTS_` (e.g. `TTS_PORT=14030`), one flat variable per
setting, and from a `.env` file in the working directory. No other module reads the environment.
`python -m sentiric_tts.settings_docs` renders `.env.example` and `docs/configuration.md` from here.
"""

from sentiric_tts.settings.audio import SUPPORTED_SAMPLE_RATES
from sentiric_tts.settings.fields import SettingsGroup
from sentiric_tts.settings.first_audio import FIRST_AUDIO_PRESETS
from sentiric_tts.settings.service import FLAT_NAMES, GROUP_CLASSES, Settings, get_settings
from sentiric_tts.settings.voices import LONGEST_REFERENCE_SECONDS

__all__ = [
    "FIRST_AUDIO_PRESETS",
    "FLAT_NAMES",
    "GROUP_CLASSES",
    "LONGEST_REFERENCE_SECONDS",
    "SUPPORTED_SAMPLE_RATES",
    "Settings",
    "SettingsGroup",
    "get_settings",
]
