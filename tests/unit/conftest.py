"""Fixtures of the unit tier: the real Runtime around a FakeEngine (tests/support/fake_runtime.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sentiric_tts.runtime import Runtime
from tests.support.fake_engine import FakeEngine
from tests.support.fake_runtime import fake_runtime


@pytest.fixture()
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture()
def runtime(tmp_path: Path, engine: FakeEngine) -> Iterator[Runtime]:
    """A started Runtime on `engine`, with fake_settings' defaults."""
    with fake_runtime(tmp_path, engine) as (started, _):
        yield started
