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

from tests.support.server import isolated_settings, running_server
from tests.support.transcribe import Transcriber


@pytest.fixture(scope="session")
def piper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(isolated_settings(tmp_path_factory.mktemp("piper-data"))) as url:
        yield url


@pytest.fixture()
def client(piper_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=piper_server, timeout=120) as http:
        yield http


@pytest.fixture(scope="session")
def transcribe() -> Transcriber:
    return Transcriber()


@pytest.fixture(scope="session")
def xtts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised XTTS v2 checkpoint, loaded by the same code as real weights."""
    pytest.importorskip("TTS.tts.models.xtts", reason="coqui-tts is not installed (the xtts extra)")
    from tests.support.random_xtts import build_random_xtts

    return build_random_xtts(tmp_path_factory.mktemp("xtts_tiny"), preset="tiny")


@pytest.fixture(scope="session")
def reference_wav(piper_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few seconds of real speech, made by the Piper server, to clone from."""
    response = httpx.post(
        f"{piper_server}/api/tts",
        json={"text": "This is my voice. Please learn how I sound from this short recording."},
        timeout=120,
    )
    assert response.status_code == 200
    path = tmp_path_factory.mktemp("clips") / "reference.wav"
    path.write_bytes(response.content)
    return path


COMPAT_XTTS_KEYS = ("compat-xtts-key-alpha-0123", "compat-xtts-key-beta-01234")
"""The API keys of `compat_xtts_server`."""


@pytest.fixture(scope="session")
def compat_xtts_server(xtts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tiny random XTTS behind COMPAT_XTTS_KEYS, shared by the other servers' APIs' tests
    (tests/e2e/test_compat_*.py)."""
    from tests.service.test_xtts_http import xtts_settings

    data = tmp_path_factory.mktemp("compat-xtts")
    with running_server(xtts_settings(data, xtts_dir, api_keys=",".join(COMPAT_XTTS_KEYS))) as url:
        yield url


# A real PostgreSQL server (session) and an empty database per test: tests/support/postgres.py.
from tests.support.postgres import postgres_server, postgres_url  # noqa: E402, F401
