"""An engine replica only does work for an ingress built for its engine: the contract of an
engine's description, and the replica's refusal of a call made for another one."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sentiric_tts.cluster.description import EngineMismatch, describe
from sentiric_tts.cluster.engine_replica import EngineReplica
from sentiric_tts.engines.base import GenerationParams
from tests.support.fake_engine import FakeEngine
from tests.support.fake_runtime import fake_settings


def test_the_contract_follows_what_the_ingress_builds_on_not_the_device() -> None:
    description = describe(FakeEngine())
    assert describe(FakeEngine()).contract() == description.contract()
    # Another GPU, another batch size: the same engine for the ingress.
    same = dataclasses.replace(description, device="cuda:1", max_batch=8, graph_batch_sizes=(1, 2))
    assert same.contract() == description.contract()
    # Another rate, another voice list: not the engine the ingress was built for.
    assert dataclasses.replace(description, sample_rate=16000).contract() != description.contract()
    fewer = dataclasses.replace(description, voices=description.voices[:1])
    assert fewer.contract() != description.contract()


def test_a_replica_speaks_for_its_own_contract_and_refuses_another(tmp_path: Path) -> None:
    engine = FakeEngine()
    replica = EngineReplica(fake_settings(tmp_path), load=lambda _: engine)
    contract = replica.describe().contract()
    voice = engine.default_voice()

    async def chunks(given: str) -> list[object]:
        stream = replica.synthesize(
            "Hello there.", "en", voice, None, GenerationParams(), True, contract=given
        )
        return [item async for item in stream]

    audio = [item for item in asyncio.run(chunks(contract)) if isinstance(item, np.ndarray)]
    assert sum(len(chunk) for chunk in audio) > 0
    calls = len(engine.calls)
    with pytest.raises(EngineMismatch, match="redeploy the whole application"):
        asyncio.run(chunks("0123456789abcdef"))
    assert len(engine.calls) == calls  # refused before any engine work
