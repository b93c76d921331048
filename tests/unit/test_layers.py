"""The core knows no door: nothing under synthesis/, engines/, audio/ or voices/ imports a door,
a web or RPC framework, or the app (failures.py and callers.py are the doors' shared vocabulary)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "sentiric_tts"
CORE = ("synthesis", "engines", "audio", "voices")
FORBIDDEN = (
    "sentiric_tts.doors",
    "sentiric_tts.app",
    "sentiric_tts.http_server",
    "fastapi",
    "starlette",
    "grpc",
    "uvicorn",
    "gradio",
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", CORE)
def test_the_core_imports_no_door_and_no_framework(package: str) -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in imported_modules(path)
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN)
    }
    assert not offenders, sorted(offenders)


def test_the_shared_vocabulary_imports_nothing_of_the_service_but_voice_access() -> None:
    assert not {n for n in imported_modules(PACKAGE / "failures.py") if n.startswith("sentiric_tts")}
    assert {n for n in imported_modules(PACKAGE / "callers.py") if n.startswith("sentiric_tts")} == {
        "sentiric_tts.failures",
        "sentiric_tts.voices.access",
    }
