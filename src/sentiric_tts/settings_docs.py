"""Renders the settings as `.env.example` and as `docs/configuration.md` (their table).

`python -m sentiric_tts.settings_docs` rewrites both files from `settings.py`; a test fails when
either drifts from it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic.fields import FieldInfo

from sentiric_tts.settings import Settings

ENV_PREFIX = "TTS_"
ENV_EXAMPLE = Path(".env.example")
CONFIGURATION_DOC = Path("docs") / "configuration.md"
REGENERATE = "python -m sentiric_tts.settings_docs"

CONFIGURATION_INTRO = f"""# Configuration

<!-- Generated from src/sentiric_tts/settings.py by `{REGENERATE}`; edit that file, not this one. -->

Every setting is an environment variable with the prefix `{ENV_PREFIX}` (names are not
case-sensitive). The service also reads a `.env` file in the folder it is started from; a variable
set in the environment wins over the same one in `.env`. [`.env.example`](../.env.example) lists
every setting with its default: copy it to `.env` and keep only what you change. In Docker,
Compose passes `.env` beside `docker-compose.yml` to the container and fixes `TTS_HOST`,
`TTS_PORT`, `TTS_GRPC_PORT` and `TTS_DATA_DIR` itself. Settings are read once, at start: restart
the service after a change. "(derived)" means the default is computed from other settings (the
folders under `TTS_DATA_DIR`) or that the feature is off while unset.

This table and `.env.example` are generated from `src/sentiric_tts/settings.py` by
`{REGENERATE}`; a test fails when they drift from it.
"""


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return value.as_posix() if value.is_absolute() else f"./{value.as_posix()}"
    return str(value)


def _fields() -> list[tuple[str, str, str]]:
    return [
        (ENV_PREFIX + name.upper(), _default(field), field.description or "")
        for name, field in Settings.model_fields.items()
    ]


def render_env_example() -> str:
    lines = ["# Every setting of the service, with its default. Copy to .env and edit what you need."]
    for env, default, description in _fields():
        # A setting whose default is derived (None) stays commented out: an empty value would set it.
        lines += ["", f"# {description}", f"# {env}=" if default == "None" else f"{env}={default}"]
    return "\n".join(lines) + "\n"


def render_markdown_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    rows += [
        f"| `{env}` | {'(derived)' if default == 'None' else f'`{default}`'} | {description} |"
        for env, default, description in _fields()
    ]
    return "\n".join(rows)


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
