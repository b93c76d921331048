"""The fake engine keeps the engine protocol and its own promises, which every unit test relies on."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sentiric_tts.engines.base import Engine, EngineError, GenerationParams, Voice
from tests.support.fake_engine import CHUNK_SAMPLES, SAMPLES_PER_CHAR, TONE_FLOOR, TONE_PEAK, FakeEngine


def test_it_is_an_engine_of_the_thread_kind() -> None:
    engine = FakeEngine()
    assert isinstance(engine, Engine)
    assert engine.kind == "thread" and engine.streams_within_segment
    assert [voice.id for voice in engine.voices()] == ["fake-low", "fake-high"]
    assert engine.default_voice() == "fake-low"
    assert engine.fingerprint() == FakeEngine().fingerprint() != FakeEngine(samples_per_char=1).fingerprint()


def test_audio_is_a_pure_function_of_text_voice_and_speed() -> None:
    engine = FakeEngine()
    text = "Hello there, this is a test."

    def render(voice: str, speed: float = 1.0) -> list[np.ndarray]:
        return list(engine.synthesize(text, "en", Voice(voice), GenerationParams(speed=speed)))

    chunks = render("fake-low")
    assert [chunk.size for chunk in chunks[:-1]] == [CHUNK_SAMPLES] * (len(chunks) - 1)
    audio = np.concatenate(chunks)
    assert audio.dtype == np.float32 and audio.size == len(text) * SAMPLES_PER_CHAR
    np.testing.assert_array_equal(audio, engine.expected_audio(text, "fake-low"))
    np.testing.assert_array_equal(np.concatenate(render("fake-low")), audio)  # same input, same audio
    assert audio.min() >= TONE_FLOOR - 1e-6 and audio.max() <= TONE_PEAK + 1e-6
    assert not np.array_equal(np.concatenate(render("fake-high")), audio)
    assert np.concatenate(render("fake-low", speed=2.0)).size == audio.size // 2


def test_calls_are_recorded_with_how_they_ended() -> None:
    engine = FakeEngine()
    params = GenerationParams(speed=1.5, temperature=0.3)
    list(engine.synthesize("One.", "de", Voice("fake-high"), params, awaited=True))
    chunks = engine.synthesize("A longer sentence than one chunk holds.", "en", Voice("fake-low"), params)
    next(chunks)
    chunks.close()  # type: ignore[attr-defined]
    first, second = engine.calls
    assert (first.text, first.language, first.voice_id, first.params, first.awaited) == (
        "One.",
        "de",
        "fake-high",
        params,
        True,
    )
    assert first.outcome == "finished" and first.thread == threading.current_thread().name
    assert (second.awaited, second.chunks, second.outcome) == (False, 1, "closed")
    engine.forget()
    assert engine.calls == []


@pytest.mark.parametrize("after_chunks", [0, 1])
def test_fail_on_a_text_raises_where_asked(after_chunks: int) -> None:
    engine = FakeEngine()
    engine.fail_on("broken", after_chunks=after_chunks)
    chunks = engine.synthesize(
        "A broken sentence that is long enough.", "en", Voice("fake-low"), GenerationParams()
    )
    got = []
    with pytest.raises(EngineError, match="fake failure"):
        for chunk in chunks:
            got.append(chunk)
    assert len(got) == after_chunks
    assert engine.calls[0].outcome == "failed"
    assert len(list(engine.synthesize("Fine.", "en", Voice("fake-low"), GenerationParams()))) == 1


def test_hold_blocks_a_call_until_released() -> None:
    engine = FakeEngine()
    gate = engine.hold("held", after_chunks=1)
    got: list[np.ndarray] = []
    text = "This call is held after its first chunk."
    worker = threading.Thread(
        target=lambda: got.extend(engine.synthesize(text, "en", Voice("fake-low"), GenerationParams()))
    )
    worker.start()
    call = engine.wait_held("held")
    assert call.chunks == 1 and call.outcome == "running"
    gate.set()
    worker.join(10)
    assert np.concatenate(got).size == engine.expected_samples(text)
    assert call.outcome == "finished"


def test_a_hold_never_released_fails_instead_of_hanging() -> None:
    engine = FakeEngine(hold_timeout_s=0.01)
    engine.hold("stuck")
    with pytest.raises(EngineError, match="never released"):
        list(engine.synthesize("stuck", "en", Voice("fake-low"), GenerationParams()))


def test_unknown_voices_and_languages_are_engine_errors() -> None:
    engine = FakeEngine()
    with pytest.raises(EngineError):
        engine.synthesize("Hi.", "en", Voice("nobody"), GenerationParams())
    with pytest.raises(EngineError):
        engine.synthesize("Hi.", "fr", Voice("fake-low"), GenerationParams())
