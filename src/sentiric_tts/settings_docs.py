"""Renders the settings as `.env.example` and as `docs/configuration.md`, section by section.

`python -m sentiric_tts.settings_docs` rewrites both files from the settings groups
(`src/sentiric_tts/settings/`); a test fails when either drifts from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic_core import PydanticUndefined

from sentiric_tts.settings import FIRST_AUDIO_PRESETS, GROUP_CLASSES, SettingsGroup
from sentiric_tts.settings.fields import ENV_PREFIX, env_text
from sentiric_tts.settings.first_audio import FirstAudioSettings

ENV_EXAMPLE = Path(".env.example")
CONFIGURATION_DOC = Path("docs") / "configuration.md"
REGENERATE = "python -m sentiric_tts.settings_docs"

CONFIGURATION_INTRO = f"""# Configuration

<!-- Generated from src/sentiric_tts/settings/ by `{REGENERATE}`; edit those files, not this one. -->

Every setting is an environment variable with the prefix `{ENV_PREFIX}` (names are not
case-sensitive). The service also reads a `.env` file in the folder it is started from; a variable
set in the environment wins over the same one in `.env`. [`.env.example`](../.env.example) lists
every setting with its default: copy it to `.env` and keep only what you change. In Docker,
Compose passes `.env` beside `docker-compose.yml` to the container and fixes `TTS_HOST`,
`TTS_PORT`, `TTS_GRPC_PORT` and `TTS_DATA_DIR` itself. Settings are read once, at start: restart
the service after a change. "(derived)" means the default is computed from other settings (the
folders under `TTS_DATA_DIR`) or that the feature is off while unset; "(preset)" means the
default comes from `TTS_FIRST_AUDIO_PRESET` (see [First audio](#first-audio)). Lists are
comma-separated (`a,b`; a JSON list works too), maps are `name=value` pairs, comma-separated.

These tables and `.env.example` are generated from `src/sentiric_tts/settings/` by
`{REGENERATE}`; a test fails when they drift from it.
"""


@dataclass(frozen=True)
class DocumentedSetting:
    env: str
    default: str | None
    """As written in the variable; None where it is derived from other settings."""
    description: str
    from_preset: bool = False
    """The default comes from the first-audio preset."""


def _preset_driven(group: type[SettingsGroup], name: str) -> bool:
    return group is FirstAudioSettings and name in FIRST_AUDIO_PRESETS["balanced"]


def _settings(group: type[SettingsGroup]) -> list[DocumentedSetting]:
    documented = []
    for name, field in group.model_fields.items():
        default = field.get_default(call_default_factory=True)
        documented.append(
            DocumentedSetting(
                env=group.env_name(name),
                default=None if default is None or default is PydanticUndefined else env_text(default),
                description=field.description or "",
                from_preset=_preset_driven(group, name),
            )
        )
    return documented


def sections() -> list[tuple[str, list[DocumentedSetting]]]:
    """Every setting, by section, in the order of the settings' groups."""
    return [(group.title, _settings(group)) for group in GROUP_CLASSES.values()]


def render_env_example() -> str:
    lines = ["# Every setting of the service, with its default. Copy to .env and edit what you need."]
    for title, documented in sections():
        lines += ["", "", f"# === {title} ==="]
        for setting in documented:
            # A derived default stays commented out (an empty value would set it); so does one that
            # comes from the preset (a copied line would override the preset).
            line = f"{setting.env}={setting.default or ''}"
            if setting.default is None or setting.from_preset:
                line = f"# {line}"
            lines += ["", f"# {setting.description}", line]
    return "\n".join(lines) + "\n"


def _default_cell(setting: DocumentedSetting) -> str:
    if setting.default is None:
        return "(derived)"
    return f"`{setting.default}` (preset)" if setting.from_preset else f"`{setting.default}`"


def _preset_table() -> str:
    names = list(FIRST_AUDIO_PRESETS)
    rows = [
        "| Setting | " + " | ".join(f"`{name}`" for name in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for field in FIRST_AUDIO_PRESETS["balanced"]:
        values = (env_text(FIRST_AUDIO_PRESETS[name][field]) for name in names)
        rows.append(
            f"| `{FirstAudioSettings.env_name(field)}` | " + " | ".join(f"`{v}`" for v in values) + " |"
        )
    return "\n".join(rows)


def render_markdown_table() -> str:
    """Every section: its heading and its table (and, for first audio, what each preset sets)."""
    parts = []
    for title, documented in sections():
        rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
        rows += [f"| `{s.env}` | {_default_cell(s)} | {s.description} |" for s in documented]
        parts += [f"## {title}", "\n".join(rows)]
        if title == FirstAudioSettings.title:
            parts += [
                "What each `TTS_FIRST_AUDIO_PRESET` sets, where the setting itself is not set:",
                _preset_table(),
            ]
    return "\n\n".join(parts)


def render_configuration_doc() -> str:
    """The whole of docs/configuration.md: how settings are read, then every one of them."""
    return f"{CONFIGURATION_INTRO}\n{render_markdown_table()}\n"


def write_docs(root: Path) -> list[Path]:
    """Rewrite .env.example and docs/configuration.md under root; return the paths written."""
    written = [root / ENV_EXAMPLE, root / CONFIGURATION_DOC]
    written[0].write_text(render_env_example(), encoding="utf-8")
    written[1].parent.mkdir(parents=True, exist_ok=True)
    written[1].write_text(render_configuration_doc(), encoding="utf-8")
    return written


if __name__ == "__main__":
    for path in write_docs(Path(".")):
        print(f"wrote {path}")
