"""Shared fixtures: a live service on the real Piper engine, an HTTP client, a transcriber."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# No test may reach a model hub: everything loads from disk or from PyPI packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sentiric_tts.settings import Settings  # noqa: E402
from tests.support.server import running_server  # noqa: E402
from tests.support.transcribe import Transcriber  # noqa: E402


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings isolated from the developer's .env and ./data."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "xtts_model_dir": data_dir / "models" / "xtts_v2",
        "piper_voices_dir": data_dir / "voices" / "piper",
        "engine": "piper",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def piper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(make_settings(tmp_path_factory.mktemp("piper-data"))) as url:
        yield url


@pytest.fixture()
def client(piper_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=piper_server, timeout=120) as http:
        yield http


@pytest.fixture(scope="session")
def transcribe() -> Transcriber:
    return Transcriber()
