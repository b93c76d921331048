"""XTTS continuous batching and the streaming vocoder, on the tiny random checkpoint (CPU).

What coqui itself computes is the reference: its own GPT generation (`GPT.generate`, which
`Xtts.inference` calls, and `GPT.get_generator`, which `Xtts.inference_stream` calls) for the
tokens and latents, and its HiFiGAN decoder run once over the whole sentence for the audio.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("TTS.tts.models.xtts", reason="coqui-tts is not installed")

from sentiric_tts.engines import torch_threads  # noqa: E402
from sentiric_tts.engines.base import EngineError, GenerationParams, Voice  # noqa: E402
from sentiric_tts.engines.xtts import XttsConditioning, XttsEngine  # noqa: E402
from sentiric_tts.engines.xtts_gpt import GraphedSteps  # noqa: E402
from sentiric_tts.engines.xtts_vocoder import StreamingVocoder  # noqa: E402

PENALTY = 5.0


def greedy(n: int) -> GenerationParams:
    return GenerationParams(
        repetition_penalty=PENALTY, extra={"do_sample": 0, "min_new_tokens": n, "max_new_tokens": n}
    )


def snr_db(test: np.ndarray, reference: np.ndarray) -> float:
    assert test.shape == reference.shape
    noise = float(np.sum((test.astype(np.float64) - reference) ** 2))
    return (
        math.inf if noise == 0 else 10 * math.log10(float(np.sum(reference.astype(np.float64) ** 2)) / noise)
    )


@pytest.fixture(scope="module")
def engine(xtts_dir: Path) -> XttsEngine:
    eng = XttsEngine.load(xtts_dir, device="cpu", max_batch=4, max_ahead=2)
    yield eng
    eng.close()


def distinct_voices(engine: XttsEngine, count: int) -> list[Voice]:
    """Voices whose conditioning is strong enough that the tiny random GPT's latents (and so its
    audio) depend on it, so audio from the wrong sequence's cache would show."""
    generator = torch.Generator().manual_seed(7)
    dim = engine.model.gpt.model_dim
    return [
        Voice(
            f"strong-{n}",
            XttsConditioning(
                torch.randn(1, 32, dim, generator=generator) * 20,
                torch.nn.functional.normalize(torch.randn(1, 512, generator=generator), dim=1).unsqueeze(-1),
            ),
        )
        for n in range(count)
    ]


def coqui_reference(engine: XttsEngine, text: str, voice: Voice, tokens: int, speed: float = 1.0):  # type: ignore[no-untyped-def]
    """(tokens from coqui's Xtts.inference generation, tokens and latents from its streaming
    generator, the audio of one whole-sentence decode of those latents)."""
    gpt = engine.model.gpt
    cond, speaker = engine._conditioning(voice)
    ids = engine._encode(text.strip().lower(), "en")
    text_tokens = torch.tensor([ids], dtype=torch.int32)
    sampling = {
        "do_sample": True,
        "top_k": 1,
        "top_p": 1.0,
        "temperature": 1.0,
        "num_beams": 1,
        "repetition_penalty": PENALTY,
        "min_new_tokens": tokens,
        "max_new_tokens": tokens,
    }
    with torch.inference_mode():
        codes = gpt.generate(cond, text_tokens, **sampling)[0].tolist()
        fake = gpt.compute_embeddings(cond, text_tokens)
        streamed, latents = [], []
        for token, latent in gpt.get_generator(
            fake, output_hidden_states=True, return_dict_in_generate=True, **sampling
        ):
            streamed.append(int(token))
            latents.append(latent[0])
        whole = torch.stack(latents)[None]
        if speed != 1.0:
            whole = torch.nn.functional.interpolate(
                whole.transpose(1, 2), scale_factor=1.0 / speed, mode="linear"
            ).transpose(1, 2)
        audio = engine.model.hifigan_decoder(whole, g=speaker).reshape(-1).clamp(-1, 1).numpy()
    return codes, streamed, audio


@pytest.mark.parametrize("speed", [0.5, 1.0, 2.0])
def test_streamed_audio_equals_one_whole_decode_of_the_same_latents(engine: XttsEngine, speed: float) -> None:
    voice = Voice("Ana Florence")
    text = "The streamed sentence and the whole one are the same."
    codes, streamed, whole = coqui_reference(engine, text, voice, 45, speed)
    assert streamed == codes[: len(streamed)]  # coqui's two generation paths agree with each other
    for first_chunk in (1, 8, 20):
        engine.first_chunk_size = first_chunk
        try:
            chunks = list(engine.synthesize(text, "en", voice, dataclasses.replace(greedy(45), speed=speed)))
        finally:
            engine.first_chunk_size = 8
        audio = np.concatenate(chunks)
        assert len(chunks) >= 3
        assert audio.shape == whole.shape
        assert snr_db(audio, whole) >= 40.0


def test_tokens_are_coquis_own(engine: XttsEngine) -> None:
    voice = distinct_voices(engine, 1)[0]
    loop = engine._batch_loop()
    stream = loop.open(engine_request(engine, "Tokens like coqui's own inference.", voice, 30))
    for _ in stream:
        pass
    codes, _, _ = coqui_reference(engine, "Tokens like coqui's own inference.", voice, 30)
    assert stream.tokens == codes


def engine_request(engine: XttsEngine, text: str, voice: Voice, tokens: int):  # type: ignore[no-untyped-def]
    from sentiric_tts.engines.xtts_batch import SequenceRequest

    cond, speaker = engine._conditioning(voice)
    ids = engine._encode(text.strip().lower(), "en")
    return SequenceRequest(
        cond,
        torch.tensor([ids], dtype=torch.int32),
        speaker,
        engine._sampling(greedy(tokens)),
        first_chunk=4,
        chunk=6,
    )


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(1, id="cpu-policy"),  # one vocoder window a turn
        pytest.param(None, id="gpu-policy"),  # every window due, batched
    ],
)
def test_a_sequence_is_the_same_alone_and_in_a_batch_that_others_join_and_leave(
    engine: XttsEngine, policy: int | None
) -> None:
    loop = engine._batch_loop()
    saved = loop.vocoder_batch
    loop.vocoder_batch = policy
    try:
        _same_alone_and_in_a_batch(engine, loop)
    finally:
        loop.vocoder_batch = saved


def _same_alone_and_in_a_batch(engine: XttsEngine, loop) -> None:  # type: ignore[no-untyped-def]
    voices = distinct_voices(engine, 3)
    jobs = [
        ("The first caller speaks a long sentence here.", voices[0], 40),
        ("A second caller joins a little later.", voices[1], 24),
        ("The third one is short.", voices[2], 12),
    ]
    alone = []
    for text, voice, tokens in jobs:
        stream = loop.open(engine_request(engine, text, voice, tokens))
        audio = np.concatenate(list(stream))
        alone.append((stream.tokens, audio))
    # The voices are told apart: a row reading another row's cache would change its audio.
    assert snr_db(alone[1][1][: alone[2][1].size], alone[2][1]) < 10

    results: dict[int, tuple[list[int], np.ndarray]] = {}
    started = [threading.Event() for _ in jobs]

    def run(index: int) -> None:
        text, voice, tokens = jobs[index]
        stream = loop.open(engine_request(engine, text, voice, tokens))
        chunks = []
        for chunk in stream:
            chunks.append(chunk)
            if len(chunks) == 2 and index + 1 < len(jobs):
                started[index + 1].set()  # the next caller joins while this one is mid-sentence
        results[index] = (stream.tokens, np.concatenate(chunks))

    threads = []
    for index in range(len(jobs)):
        if index:
            assert started[index].wait(120)
        thread = threading.Thread(target=run, args=(index,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(300)
    for index, (tokens, audio) in enumerate(alone):
        assert results[index][0] == tokens
        assert snr_db(results[index][1], audio) >= 40.0
    assert loop.stepped_rows > loop.steps  # steps really ran several rows at once


def test_newcomers_of_one_turn_share_one_prefill_and_get_their_own_tokens(engine: XttsEngine) -> None:
    loop = engine._batch_loop()
    voices = distinct_voices(engine, 3)
    jobs = [
        ("Short.", voices[0], 14),
        ("A sentence of middling length here.", voices[1], 18),
        ("And a third, longer sentence, with a few more words in it than the others.", voices[2], 22),
    ]
    alone = []
    for text, voice, tokens in jobs:
        stream = loop.open(engine_request(engine, text, voice, tokens))
        alone.append((np.concatenate(list(stream)), stream))
    passes = loop.prefill_passes
    with loop._cond:  # the loop takes its newcomers only once all three are waiting
        streams = [loop.open(engine_request(engine, text, voice, tokens)) for text, voice, tokens in jobs]
    audio = [np.concatenate(list(stream)) for stream in streams]
    assert loop.prefill_passes == passes + 1  # prefixes of three lengths, padded, in one pass
    for (solo_audio, solo), stream, clip in zip(alone, streams, audio, strict=True):
        assert stream.tokens == solo.tokens
        assert snr_db(clip, solo_audio) >= 40.0


def wait_until(condition, seconds: float = 120.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_cancel_removes_a_sequence_within_one_step(engine: XttsEngine) -> None:
    loop = engine._batch_loop()
    voices = distinct_voices(engine, 2)
    keeper = loop.open(engine_request(engine, "This one plays to its end.", voices[0], 60))
    leaver = loop.open(engine_request(engine, "This one is abandoned.", voices[1], 60))
    next(leaver)
    next(keeper)
    tokens_at_close = len(leaver.tokens)
    leaver.close()
    assert wait_until(lambda: loop.resident == 1)
    # Removed before a second step could advance it (one may have been running at the close).
    assert len(leaver.tokens) <= tokens_at_close + 1
    assert sum(chunk.size for chunk in keeper) > 0


def test_a_slow_reader_pauses_its_sequence_without_stalling_the_others(engine: XttsEngine) -> None:
    loop = engine._batch_loop()
    voices = distinct_voices(engine, 2)
    slow_request = engine_request(engine, "A reader that does not read.", voices[0], 50)
    solo = loop.open(slow_request)
    solo_audio = np.concatenate(list(solo))

    slow = loop.open(slow_request)
    first = next(slow)
    fast = loop.open(engine_request(engine, "A reader that reads everything.", voices[1], 50))
    fast_audio = [chunk for chunk in fast]
    assert sum(chunk.size for chunk in fast_audio) > 0
    # Paused after `max_ahead` unread chunks: first chunk 4 tokens, then 6 per chunk; plus the 4
    # steps of the newcomer's first chunk, while later chunks wait (their latents pending).
    assert len(slow.tokens) <= 4 + 6 * (loop.max_ahead + 1) + 4
    assert slow.tokens != solo.tokens  # not finished: it waited for its reader
    rest = list(slow)
    assert slow.tokens == solo.tokens
    assert snr_db(np.concatenate([first, *rest]), solo_audio) >= 40.0


def test_a_failing_sequence_ends_alone_and_the_batch_runs_on(engine: XttsEngine) -> None:
    dim = engine.model.gpt.model_dim
    broken = Voice(
        "broken",
        XttsConditioning(torch.full((1, 32, dim), float("nan")), torch.ones(1, 512, 1) / math.sqrt(512)),
    )
    good = distinct_voices(engine, 1)[0]
    healthy = engine.synthesize("The healthy one goes on.", "en", good, greedy(30))
    first = next(healthy)
    with pytest.raises(EngineError, match="XTTS synthesis failed"):
        list(engine.synthesize("This one fails.", "en", broken, greedy(30)))
    rest = list(healthy)
    alone = np.concatenate(list(engine.synthesize("The healthy one goes on.", "en", good, greedy(30))))
    assert snr_db(np.concatenate([first, *rest]), alone) >= 40.0


def test_the_vocoder_work_grows_linearly(engine: XttsEngine) -> None:
    decoder = engine.model.hifigan_decoder
    speaker = engine._conditioning(Voice("Ana Florence"))[1]
    latents = torch.randn(240, engine.model.gpt.model_dim)
    vocoder = StreamingVocoder(decoder, speaker)
    with torch.inference_mode():
        for start in range(0, 240, 20):
            vocoder.push(latents[start : start + 20])
        vocoder.push(latents[:0], final=True)
    frames = math.floor(240 * 4 * 24000 / 22050)
    # Each of the 12 windows decodes at most two margins more than its own frames.
    assert vocoder.decoded_frames <= frames + 12 * 2 * 12


class StaticShapeSteps(GraphedSteps):
    """What the CUDA graphs replay, run eagerly on the CPU: each bucket's fixed shapes, attention
    over the whole masked cache, padding rows in empty slots."""

    def capture(self) -> bool:
        self.buckets = self.bucket_sizes(self.gpt.slots)
        return True

    def replay(self, count: int, inputs: torch.Tensor, flags: torch.Tensor):  # type: ignore[no-untyped-def]
        size = next(b for b in self.buckets if b >= count)
        padded = torch.zeros(size, inputs.shape[-1], dtype=inputs.dtype)
        padded[:count] = inputs
        advance = torch.zeros(size, dtype=torch.bool)
        advance[:count] = flags
        latents, logits = self.gpt.step_body(size, padded, advance, self.gpt.max_len)
        return latents[:count], logits[:count]


def test_the_graph_step_computes_what_the_eager_step_computes(engine: XttsEngine) -> None:
    loop = engine._batch_loop()
    voices = distinct_voices(engine, 3)
    jobs = [(f"Sentence number {n} for the fixed shapes.", voices[n], 14 + 4 * n) for n in range(3)]

    def run_all() -> list[tuple[list[int], np.ndarray]]:
        streams = [loop.open(engine_request(engine, text, voice, tokens)) for text, voice, tokens in jobs]
        audio = [np.concatenate(list(stream)) for stream in streams]
        return [(stream.tokens, clip) for stream, clip in zip(streams, audio, strict=True)]

    eager = run_all()
    static = StaticShapeSteps(loop.batch)
    assert static.capture() and static.buckets == [1, 2, 4]
    loop.graphs = static
    try:
        replayed = run_all()
    finally:
        loop.graphs = None
    for (tokens, audio), (static_tokens, static_audio) in zip(eager, replayed, strict=True):
        assert static_tokens == tokens
        assert snr_db(static_audio, audio) >= 40.0


def torch_threads_of_a_new_thread() -> int:
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_on_the_cpu_the_batch_loop_alone_runs_torch_with_every_core(engine: XttsEngine) -> None:
    list(engine.synthesize("Every core for the loop.", "en", Voice("Ana Florence"), greedy(4)))
    assert engine._batch_loop().torch_threads == torch_threads.CORES
    assert torch_threads_of_a_new_thread() == 1


def test_work_on_its_own_thread_gets_every_core_and_hands_back_its_result_or_error() -> None:
    torch_threads.one_thread_elsewhere()  # what loading XTTS on the CPU does
    assert torch_threads.on_own_thread(torch.get_num_threads, "probe") == torch_threads.CORES
    with pytest.raises(ZeroDivisionError):
        torch_threads.on_own_thread(lambda: 1 / 0, "probe")
    assert torch_threads_of_a_new_thread() == 1
