"""The stream's accounting (synthesis/stream.py, render.py) on the fake engine, sample-exact: pauses
are exact runs of silence, marks land where the audio says, muted text keeps its place, streamed
and whole outputs agree, and every output rate gets its predicted length."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from sentiric_tts.audio.pcm import float_to_int16
from sentiric_tts.engines.base import GenerationParams
from sentiric_tts.failures import SynthesisFailed
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.render import AudioLimitReached
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.text import CLAUSE_PAUSE_S
from tests.support.fake_engine import SAMPLE_RATE, FakeEngine
from tests.support.fake_runtime import fake_runtime, open_pcm, streamed_pcm, whole_pcm, zero_runs

RATE = SAMPLE_RATE
SENTENCE_PAUSE = round(0.2 * RATE)  # fake_settings keeps TTS_SENTENCE_PAUSE_MS=200
FADE = round(0.001 * RATE)  # fake_settings' 1 ms fades


def samples(engine: FakeEngine, *texts: str, speed: float = 1.0) -> list[int]:
    return [engine.expected_samples(text, speed) for text in texts]


def stream(runtime: Runtime, text: str, **fields: object) -> np.ndarray:
    _, audio, finished = asyncio.run(streamed_pcm(runtime, SynthesisRequest(text=text, **fields)))  # type: ignore[arg-type]
    assert finished.outcome == "ok"
    return audio


def test_a_sentence_is_the_engine_audio_with_faded_edges(runtime: Runtime, engine: FakeEngine) -> None:
    text = "Hello there."
    audio = stream(runtime, text, voice="fake-high")
    expected = float_to_int16(engine.expected_audio(text, "fake-high"))
    assert audio.size == expected.size
    # Between the 1 ms fades, the engine's samples (gain 0 dB, the limiter idle), to one LSB.
    assert np.abs(audio[FADE:-FADE].astype(int) - expected[FADE:-FADE]).max() <= 1
    assert abs(int(audio[0])) < abs(int(expected[0])) and abs(int(audio[-1])) < abs(int(expected[-1]))
    assert [call.voice_id for call in engine.calls] == ["fake-high"]


def test_sentences_are_joined_by_exact_sentence_pauses(runtime: Runtime, engine: FakeEngine) -> None:
    text = "One two three. Four five six! Seven?"
    audio = stream(runtime, text)
    sentences = ["One two three.", "Four five six!", "Seven?"]
    assert engine.texts() == sentences
    assert zero_runs(audio) == [SENTENCE_PAUSE, SENTENCE_PAUSE]
    assert audio.size == sum(samples(engine, *sentences)) + 2 * SENTENCE_PAUSE


def test_ssml_breaks_are_exact_silence_before_between_and_after(runtime: Runtime, engine: FakeEngine) -> None:
    ssml = (
        '<speak><break time="250ms"/>Alpha beta.<break time="500ms"/>Gamma delta.<break time="1s"/></speak>'
    )
    _, audio, finished = asyncio.run(streamed_pcm(runtime, SynthesisRequest(text=ssml)))
    assert engine.texts() == ["Alpha beta.", "Gamma delta."]
    # A break replaces the sentence pause; breaks at the edges are kept too.
    assert zero_runs(audio) == [round(0.25 * RATE), round(0.5 * RATE), RATE]
    assert audio.size == sum(samples(engine, "Alpha beta.", "Gamma delta.")) + round(1.75 * RATE)
    # The plan's pause estimate is the silence the stream made.
    assert round(finished.plan.pause_seconds * RATE) == round(1.75 * RATE)


def test_ssml_sentences_and_paragraphs_pause_as_the_ssml_module_says(
    runtime: Runtime, engine: FakeEngine
) -> None:
    ssml = "<speak><p><s>First one</s><s>Second one</s></p><p>Third one</p></speak>"
    audio = stream(runtime, ssml)
    assert engine.texts() == ["First one.", "Second one.", "Third one."]
    assert zero_runs(audio) == [round(0.25 * RATE), round(0.6 * RATE)]


def test_a_sentence_cut_for_length_pauses_like_a_comma(tmp_path: Path) -> None:
    text = "Good morning to you, and welcome to the show."  # 45 characters, over the 40 allowed
    with fake_runtime(tmp_path, FakeEngine(max_chars=40)) as (runtime, engine):
        audio = stream(runtime, text)
        assert engine.texts() == ["Good morning to you,", "and welcome to the show."]
        assert zero_runs(audio) == [round(CLAUSE_PAUSE_S * RATE)]
        engine.forget()
        # Twice as fast: the pieces and the comma's pause take half as long.
        fast = stream(runtime, text, params=GenerationParams(speed=2.0))
        assert [call.params.speed for call in engine.calls] == [2.0, 2.0]
        assert zero_runs(fast) == [round(CLAUSE_PAUSE_S / 2 * RATE)]
        pieces = samples(engine, "Good morning to you,", "and welcome to the show.", speed=2.0)
        assert fast.size == sum(pieces) + round(CLAUSE_PAUSE_S / 2 * RATE)


def test_marks_are_reported_at_the_sample_where_they_fall(runtime: Runtime, engine: FakeEngine) -> None:
    ssml = (
        '<speak><mark name="start"/>Alpha beta. <mark name="middle"/>Gamma delta. <mark name="end"/></speak>'
    )
    _, audio, finished = asyncio.run(streamed_pcm(runtime, SynthesisRequest(text=ssml)))
    first, second = samples(engine, "Alpha beta.", "Gamma delta.")
    assert audio.size == first + SENTENCE_PAUSE + second
    assert finished.marks == [("start", 0.0), ("middle", first / RATE), ("end", audio.size / RATE)]


def test_marks_are_in_seconds_whatever_the_output_rate(runtime: Runtime, engine: FakeEngine) -> None:
    ssml = '<speak>Alpha beta. <mark name="middle"/>Gamma delta.</speak>'
    plan, audio, finished = asyncio.run(streamed_pcm(runtime, SynthesisRequest(text=ssml, sample_rate=16000)))
    assert plan.sample_rate == 16000
    first, second = samples(engine, "Alpha beta.", "Gamma delta.")
    assert audio.size * RATE == (first + SENTENCE_PAUSE + second) * 16000
    assert finished.marks == [("middle", first / RATE)]


def test_a_mark_after_a_break_lands_after_the_break(runtime: Runtime, engine: FakeEngine) -> None:
    ssml = '<speak>Alpha beta.<break time="500ms"/><mark name="after"/>Gamma delta.</speak>'
    _, _, finished = asyncio.run(streamed_pcm(runtime, SynthesisRequest(text=ssml)))
    (first,) = samples(engine, "Alpha beta.")
    assert finished.marks == [("after", (first + RATE // 2) / RATE)]


def test_muted_text_is_silent_and_keeps_its_place(runtime: Runtime, engine: FakeEngine) -> None:
    ssml = '<speak>Alpha beta. <prosody volume="silent">Gamma delta.</prosody> Epsilon zeta.</speak>'
    audio = stream(runtime, ssml)
    first, muted, last = samples(engine, "Alpha beta.", "Gamma delta.", "Epsilon zeta.")
    assert engine.texts() == ["Alpha beta.", "Gamma delta.", "Epsilon zeta."]  # rendered, not heard
    # One silence: the pause before the muted text, its own length, the pause after it.
    assert zero_runs(audio) == [SENTENCE_PAUSE + muted + SENTENCE_PAUSE]
    assert np.count_nonzero(audio) == first + last  # nothing of the muted text is heard


@pytest.mark.parametrize("where", ["first", "last"])
def test_muted_text_at_an_edge_is_silence_of_its_length_and_its_pause(
    runtime: Runtime, engine: FakeEngine, where: str
) -> None:
    muted = '<prosody volume="silent">Gamma delta.</prosody>'
    ssml = (
        f"<speak>{muted} Alpha beta.</speak>" if where == "first" else f"<speak>Alpha beta. {muted}</speak>"
    )
    plan, audio, _ = asyncio.run(streamed_pcm(runtime, SynthesisRequest(text=ssml)))
    spoken, silent = samples(engine, "Alpha beta.", "Gamma delta.")
    # As the same text spoken: the sentence pause between the two, none at the edge.
    assert zero_runs(audio) == [silent + SENTENCE_PAUSE]
    assert audio.size == spoken + SENTENCE_PAUSE + silent
    assert round(plan.pause_seconds * RATE) == SENTENCE_PAUSE
    gap = silent + SENTENCE_PAUSE
    assert (audio[:gap] == 0).all() if where == "first" else (audio[-gap:] == 0).all()


def test_muted_text_takes_as_long_as_the_same_text_spoken(runtime: Runtime) -> None:
    spoken = stream(
        runtime, "<speak>Alpha beta. <prosody volume='x-soft'>Gamma delta.</prosody> Epsilon zeta.</speak>"
    )
    muted = stream(
        runtime, "<speak>Alpha beta. <prosody volume='silent'>Gamma delta.</prosody> Epsilon zeta.</speak>"
    )
    assert muted.size == spoken.size


def test_a_mark_after_muted_text_lands_after_its_silence(runtime: Runtime, engine: FakeEngine) -> None:
    ssml = (
        '<speak>Alpha beta. <prosody volume="silent">Gamma delta.</prosody><mark name="m"/> Epsilon.</speak>'
    )
    _, _, finished = asyncio.run(streamed_pcm(runtime, SynthesisRequest(text=ssml)))
    first, muted = samples(engine, "Alpha beta.", "Gamma delta.")
    assert finished.marks == [("m", (first + SENTENCE_PAUSE + muted) / RATE)]


def test_an_element_inside_a_sentence_does_not_pause_it_like_a_sentence_end(runtime: Runtime) -> None:
    audio = stream(runtime, "<speak>Alpha <emphasis>beta</emphasis> gamma.</speak>")
    assert all(run < SENTENCE_PAUSE for run in zero_runs(audio))


def test_an_element_after_a_sentence_end_is_a_sentence_pause_away(runtime: Runtime) -> None:
    audio = stream(runtime, "<speak>Alpha beta. <emphasis>Gamma</emphasis> delta.</speak>")
    assert max(zero_runs(audio)) == SENTENCE_PAUSE


REQUESTS = [
    "One two three. Four five six! Seven?",
    '<speak><break time="250ms"/>Alpha beta.<mark name="m"/><break time="500ms"/>Gamma delta.'
    '<prosody volume="silent"> Quiet now.</prosody><prosody pitch="+3st" volume="-6dB"> Higher and'
    ' softer.</prosody><break time="300ms"/></speak>',
]


@pytest.mark.parametrize("text", REQUESTS, ids=["plain", "ssml"])
@pytest.mark.parametrize("sample_rate", [None, 16000])
def test_streamed_and_whole_outputs_are_the_same(
    runtime: Runtime, text: str, sample_rate: int | None
) -> None:
    request = SynthesisRequest(text=text, sample_rate=sample_rate)
    _, streamed, _ = asyncio.run(streamed_pcm(runtime, request))
    _, whole, _ = asyncio.run(whole_pcm(runtime, request))
    assert streamed.size == whole.size
    if sample_rate is None:
        np.testing.assert_array_equal(streamed, whole)
    else:  # the resampler, fed in other pieces, may round a sample the other way
        assert np.abs(streamed.astype(int) - whole).max() <= 1


@pytest.mark.parametrize("text", REQUESTS, ids=["plain", "ssml"])
def test_streamed_and_whole_lengths_agree_with_loudness_normalisation(tmp_path: Path, text: str) -> None:
    with fake_runtime(tmp_path, loudness_normalize=True, crossfade_ms=10.0) as (runtime, _):
        request = SynthesisRequest(text=text)
        _, streamed, _ = asyncio.run(streamed_pcm(runtime, request))
        _, whole, _ = asyncio.run(whole_pcm(runtime, request))
    assert streamed.size == whole.size


@pytest.mark.parametrize("sample_rate", [8000, 16000, 48000])
def test_every_output_rate_gets_its_predicted_length(
    runtime: Runtime, engine: FakeEngine, sample_rate: int
) -> None:
    text = '<speak>One two three. Four five six!<break time="300ms"/>Seven?</speak>'
    native = stream(runtime, text)
    assert native.size == sum(samples(engine, *engine.texts())) + SENTENCE_PAUSE + round(0.3 * RATE)
    for collect in (streamed_pcm, whole_pcm):
        plan, audio, _ = asyncio.run(collect(runtime, SynthesisRequest(text=text, sample_rate=sample_rate)))
        assert plan.sample_rate == sample_rate
        assert audio.size * RATE == native.size * sample_rate  # the fake's lengths divide evenly


@pytest.mark.parametrize("sample_rate", [None, 8000, 16000, 48000])
def test_pauses_are_silence_of_their_length_at_every_rate_with_the_default_fades(
    tmp_path: Path, sample_rate: int | None
) -> None:
    """With the default 10 ms fades the first and last faded samples round to zero, and the
    resampler's filter rings a little around an edge, so a pause is exact to a few samples."""
    rate = sample_rate or RATE
    with fake_runtime(tmp_path, crossfade_ms=10.0) as (runtime, _):
        text = '<speak>One two three. Four five six!<break time="300ms"/>Seven?</speak>'
        audio = stream(runtime, text, sample_rate=sample_rate)
    pauses = [run for run in zero_runs(audio) if run > rate // 1000]  # not the crumbs at an edge
    tolerance = 1 + round(0.00025 * rate)
    assert len(pauses) == 2
    for got, want in zip(pauses, [0.2 * rate, 0.3 * rate], strict=True):
        assert abs(got - want) <= tolerance


def test_runaway_audio_is_cut_at_the_guard(tmp_path: Path) -> None:
    # One second per character: far longer than any text takes to say.
    with fake_runtime(tmp_path, FakeEngine(samples_per_char=RATE)) as (runtime, engine):
        plan, audio, finished = asyncio.run(streamed_pcm(runtime, SynthesisRequest(text="Hi there.")))
        (segment,) = plan.segments
        limit = runtime.pipeline.renderer.runaway.max_samples(segment, RATE)
        assert limit < engine.expected_samples("Hi there.")
        assert audio.size == limit
        assert finished.outcome == "ok"
        assert engine.calls[0].outcome == "closed"  # the engine's call is stopped, not drained


def test_speech_past_the_audio_limit_ends_the_stream(tmp_path: Path) -> None:
    # 0.2 s per character: the plan's estimate (0.07 s per character, 1.5 s) passes, the audio
    # (4.2 s) does not.
    text = "Twenty one characters"
    with fake_runtime(tmp_path, FakeEngine(samples_per_char=RATE // 5), max_audio_seconds=2.0) as (
        runtime,
        engine,
    ):

        async def main() -> tuple[int, str]:
            audio = await open_pcm(runtime, SynthesisRequest(text=text))
            received = 0
            with pytest.raises(AudioLimitReached):
                async for chunk in audio.chunks():
                    received += len(chunk) // 2
            return received, audio.outcome

        received, outcome = asyncio.run(main())
        assert outcome == "refused"
        assert 0 < received <= 2 * RATE  # nothing past the limit went out
        # The engine's call is stopped, and the job gone, once the worker has let go of it.
        assert engine.wait_until(lambda fake: fake.calls[0].outcome == "closed")
        assert engine.calls[0].chunks < engine.expected_samples(text) // engine.chunk_samples


def test_an_engine_failure_ends_the_stream_as_failed(runtime: Runtime, engine: FakeEngine) -> None:
    engine.fail_on("Broken", after_chunks=1)

    async def main() -> str:
        audio = await open_pcm(runtime, SynthesisRequest(text="Fine words here. Broken words there."))
        with pytest.raises(SynthesisFailed):
            async for _ in audio.chunks():
                pass
        return audio.outcome

    assert asyncio.run(main()) == "failed"
    assert [call.outcome for call in engine.calls] == ["finished", "failed"]
