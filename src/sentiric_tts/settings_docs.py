"""Renders the settings as `.env.example` and as the README's configuration table.

`python -m sentiric_tts.settings_docs` rewrites `.env.example` and prints the table; a test fails
when either drifts from `settings.py`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic.fields import FieldInfo

from sentiric_tts.settings import Settings

ENV_PREFIX = "TTS_"


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


def write_docs(root: Path) -> None:
    """Rewrite .env.example and the README's table between its settings-table markers."""
    (root / ".env.example").write_text(render_env_example(), encoding="utf-8")
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{render_markdown_table()}\n{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    write_docs(Path("."))
