"""README, .env.example and settings.py must agree."""

from __future__ import annotations

from pathlib import Path

from sentiric_tts.settings import Settings
from sentiric_tts.settings_docs import render_env_example, render_markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_lists_every_setting_with_its_default() -> None:
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == render_env_example(), (
        "regenerate with: python -m sentiric_tts.settings_docs"
    )


def test_readme_configuration_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert render_markdown_table() in readme, "regenerate with: python -m sentiric_tts.settings_docs"


def test_every_setting_is_described() -> None:
    assert all(field.description for field in Settings.model_fields.values())
