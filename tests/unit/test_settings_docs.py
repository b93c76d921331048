"""docs/configuration.md, .env.example and the settings groups must agree."""

from __future__ import annotations

from pathlib import Path

from sentiric_tts.settings import GROUP_CLASSES
from sentiric_tts.settings_docs import (
    CONFIGURATION_DOC,
    ENV_EXAMPLE,
    REGENERATE,
    render_configuration_doc,
    render_env_example,
    render_markdown_table,
)

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_setting_with_its_default() -> None:
    assert (ROOT / ENV_EXAMPLE).read_text(encoding="utf-8") == render_env_example(), (
        f"regenerate with: {REGENERATE}"
    )


def test_configuration_doc_table_is_current() -> None:
    doc = (ROOT / CONFIGURATION_DOC).read_text(encoding="utf-8")
    assert render_markdown_table() in doc, f"regenerate with: {REGENERATE}"
    assert doc == render_configuration_doc(), (
        f"docs/configuration.md is generated; regenerate with: {REGENERATE}"
    )


def test_readme_links_to_the_configuration_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"]({CONFIGURATION_DOC.as_posix()})" in readme


def test_every_setting_is_described() -> None:
    assert all(field.description for group in GROUP_CLASSES.values() for field in group.model_fields.values())
