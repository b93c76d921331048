"""Continuous batching for XTTS: one thread per model advances every active sentence by one audio
token per step, in one batched forward pass, and vocodes their new latents window by window.

A caller opens a sequence (its GPT prefix inputs, sampling settings, speaker embedding, speed) and
reads its audio from a `SequenceStream`, which blocks until the loop has the next chunk. Each
loop turn:

1. admits new sequences: their prefills (conditioning + text + start token) in one batched
   pass, each into a free cache slot;
2. drops the ones that ended, were cancelled or failed (their slots are compacted at once);
3. runs one decode step for every sequence in the batch and draws each one's next token;
4. vocodes the chunks that are due: first chunks before anything else, and while a sequence
   still waits for its first audio, the later chunks of others wait (a newcomer's first audio
   costs its prefill and `first_chunk` steps, not the vocoding of streams already playing).
   Later chunks of several sequences go through the generator in one batch.

A sequence whose reader has `max_ahead` chunks unread is paused: it rides along in the batch (its
row is computed but neither its token nor its position is kept), so a slow reader costs no
memory and stalls nobody. Closing a stream removes its sequence before the next step. A failure
that belongs to one sequence (its prefill, non-finite logits, its vocoder window) ends that
sequence with the error and the batch runs on; a failed batched step ends the sequences in it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sentiric_tts.engines import torch_threads
from sentiric_tts.engines.xtts_gpt import BatchedGpt, GraphedSteps
from sentiric_tts.engines.xtts_sampling import BatchSampler, Sampling
from sentiric_tts.engines.xtts_vocoder import StreamingVocoder

log = logging.getLogger(__name__)

_END = object()
_CONDITIONING_LATENTS = 32


class SequenceFailed(RuntimeError):
    """The engine could not finish a sequence (the caller reports an engine failure)."""


@dataclass(frozen=True)
class SequenceRequest:
    """One sentence for the loop: everything it needs, already on the model's device."""

    cond_latent: torch.Tensor
    """[1, 32, C] GPT conditioning latents."""
    text_tokens: torch.Tensor
    """[1, T] int32 text token ids."""
    speaker_embedding: torch.Tensor
    """[1, 512, 1] HiFiGAN conditioning."""
    sampling: Sampling
    length_scale: float = 1.0
    first_chunk: int = 8
    chunk: int = 20
    awaited: bool = True
    """Someone waits for this sentence's first audio (it goes before others' later chunks)."""


@dataclass(eq=False)
class _Sequence:
    request: SequenceRequest
    output: queue.Queue[object] = field(default_factory=queue.Queue)
    cancelled: bool = False
    slot: int | None = None
    vocoder: StreamingVocoder | None = None
    tokens: list[int] = field(default_factory=list)
    pending: list[torch.Tensor] = field(default_factory=list)
    """Latents not yet given to the vocoder."""
    ended: bool = False
    """The GPT is done (stop token or token limit); the vocoder may still owe audio."""
    done: bool = False
    delivered: int = 0
    """Chunks put on `output`."""
    read: int = 0
    """Chunks the reader took."""

    @property
    def waiting_first_audio(self) -> bool:
        """Someone waits for this sentence's first audio, and it has none out yet."""
        return self.request.awaited and self.delivered == 0 and not self.done

    def due(self) -> bool:
        """Whether the vocoder has a chunk to make now."""
        if self.done:
            return False
        if self.ended:
            return True
        threshold = self.request.first_chunk if self.delivered == 0 else self.request.chunk
        return len(self.pending) >= threshold


class SequenceStream(Iterator[np.ndarray]):
    """A sequence's audio chunks (float32, in [-1, 1]) as the loop makes them; `close` cancels."""

    def __init__(self, loop: BatchLoop, sequence: _Sequence) -> None:
        self._loop = loop
        self._sequence = sequence

    def __iter__(self) -> SequenceStream:
        return self

    def __next__(self) -> np.ndarray:
        item = self._sequence.output.get()
        if item is _END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise SequenceFailed(str(item) or type(item).__name__) from item
        self._sequence.read += 1
        self._loop.wake()
        assert isinstance(item, np.ndarray)
        return item

    @property
    def tokens(self) -> list[int]:
        """Audio tokens generated so far (the stop token included once generated)."""
        return list(self._sequence.tokens)

    def close(self) -> None:
        if not self._sequence.done:
            self._sequence.cancelled = True
            self._loop.wake()


class BatchLoop:
    """The stepping thread of one XTTS model (see the module doc)."""

    def __init__(
        self,
        model: Any,
        *,
        max_batch: int,
        max_ahead: int,
        dtype: torch.dtype,
        device: str,
        vocoder_batch: int | None = None,
        all_cores: bool = False,
    ) -> None:
        """`vocoder_batch`: windows vocoded
        per turn, in one generator call (None: every window due; on the CPU, where a batch of
        windows costs what they cost one by one, 1 keeps a newcomer from waiting behind them).
        `all_cores`: the loop's thread runs torch's CPU kernels on every core, the one thread
        that does (see torch_threads)."""
        self.all_cores = all_cores
        self.torch_threads: int | None = None
        """Threads torch's CPU kernels use on the loop's thread, once it runs."""
        self.vocoder_batch = vocoder_batch
        gpt = model.gpt
        self._model = model
        self._gpt = gpt
        self._decoder = model.hifigan_decoder
        self.max_batch = max_batch
        self.max_ahead = max_ahead
        # The longest sequence: 32 conditioning latents (the perceiver's output), the text with
        # its start and stop tokens, the audio start token and every audio token.
        max_len = _CONDITIONING_LATENTS + int(gpt.max_text_tokens) + int(gpt.max_mel_tokens) + 1
        self.batch = BatchedGpt(gpt, slots=max_batch, max_len=max_len, device=device, dtype=dtype)
        self._sampler = BatchSampler(
            max_batch, self.batch.shape.vocab, int(gpt.stop_audio_token), torch.device(device)
        )
        self._stop_token = int(gpt.stop_audio_token)
        self._start_token = int(gpt.start_audio_token)
        self._prompt_tokens = (1, self._start_token)  # what coqui's placeholder prompt holds
        self._cond = threading.Condition()
        self._incoming: list[_Sequence] = []
        self._slots: list[_Sequence] = []
        """Resident sequences; `_slots[i]` lives in cache slot i."""
        self.graphs: GraphedSteps | None = None
        """CUDA graphs of the decode step, once `capture_graphs` succeeded."""
        self._closing = False
        self._thread: threading.Thread | None = None
        self.steps = 0
        """Decode steps run (one per loop turn with sequences in the batch)."""
        self.stepped_rows = 0
        """Rows computed over all steps (paused ones riding along included)."""
        self.prefill_passes = 0
        """Batched prefill passes run (several newcomers of one turn share one)."""

    def capture_graphs(self) -> bool:
        """Capture the decode step's CUDA graphs (at warm-up, before sentences arrive)."""
        if self.batch.device.type != "cuda":
            return False
        graphs = GraphedSteps(self.batch)
        with self._cond:
            if graphs.capture():
                self.graphs = graphs
        return self.graphs is not None

    # --- the callers' side ---

    def open(self, request: SequenceRequest) -> SequenceStream:
        sequence = _Sequence(request)
        with self._cond:
            if self._closing:
                raise SequenceFailed("the XTTS engine is closed")
            self._incoming.append(sequence)
            self._ensure_thread()
            self._cond.notify_all()
        return SequenceStream(self, sequence)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(30)

    @property
    def resident(self) -> int:
        """Sequences holding a cache slot (running or paused)."""
        with self._cond:
            return len(self._slots)

    @property
    def waiting(self) -> int:
        """Sequences opened but not yet admitted to the batch (every slot taken)."""
        with self._cond:
            return len(self._incoming)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="xtts-batch-loop", daemon=True)
            self._thread.start()

    # --- the loop ---

    def _run(self) -> None:
        if self.all_cores:
            torch_threads.take_all_cores()
        self.torch_threads = torch.get_num_threads()
        while True:
            with self._cond:
                while not self._closing and not self._has_work():
                    self._cond.wait()
                if self._closing:
                    incoming, self._incoming = self._incoming, []
                    for sequence in [*incoming, *self._slots]:
                        self._fail(sequence, SequenceFailed("the XTTS engine was closed"))
                    self._slots = []
                    return
                incoming = self._take_incoming()
            try:
                with torch.inference_mode():
                    self._turn(incoming)
            except Exception as exc:  # never let the loop die: fail what was in flight, go on
                log.exception("XTTS batch loop turn failed")
                for sequence in self._slots:
                    self._fail(sequence, exc)
                self._compact()

    def _has_work(self) -> bool:
        if self._incoming and len(self._slots) < self.max_batch:
            return True
        return any(
            s.cancelled or (not s.done and not self._paused(s) and (not s.ended or s.due()))
            for s in self._slots
        )

    def _take_incoming(self) -> list[_Sequence]:
        room = self.max_batch - len(self._slots)
        # Sentences someone waits for first; otherwise in arrival order.
        ordered = sorted(self._incoming, key=lambda s: not s.request.awaited)
        taken, rest = ordered[:room], ordered[room:]
        self._incoming = [s for s in self._incoming if s in rest]
        return taken

    def _paused(self, sequence: _Sequence) -> bool:
        return sequence.delivered - sequence.read >= self.max_ahead

    def _turn(self, incoming: list[_Sequence]) -> None:
        for sequence in incoming:
            if sequence.cancelled:
                self._finish(sequence)
        self._prefill([s for s in incoming if not s.done])
        self._compact()
        self._step()
        self._vocode()
        self._compact()

    def _prefix(self, request: SequenceRequest) -> torch.Tensor:
        """A sentence's GPT input: coqui's conditioning + text embedding, then the start token."""
        gpt = self._gpt
        gpt.compute_embeddings(request.cond_latent, request.text_tokens)
        prefix = gpt.gpt_inference.cached_prefix_emb
        device = prefix.device
        start = gpt.mel_embedding(torch.tensor([[self._start_token]], device=device))
        start = start + gpt.mel_pos_embedding.emb(torch.zeros((1, 1), dtype=torch.long, device=device))
        return torch.cat([prefix, start.to(prefix.dtype)], dim=1)

    def _prefill(self, sequences: list[_Sequence]) -> None:
        """Admit newcomers in one batched pass (one by one when that fails, so a sequence that
        cannot be prefilled fails alone)."""
        ready: list[tuple[_Sequence, torch.Tensor]] = []
        for sequence in sequences:
            try:
                ready.append((sequence, self._prefix(sequence.request)))
            except Exception as exc:
                log.warning("XTTS prefill failed: %s", exc, exc_info=True)
                self._fail(sequence, exc)
        if not ready:
            return
        first = len(self._slots)
        try:
            latents, logits = self.batch.prefill(first, [prefix for _, prefix in ready])
            self.prefill_passes += 1
        except Exception as exc:
            for slot in range(first, first + len(ready)):
                self.batch.release(slot)
            if len(ready) == 1:
                log.warning("XTTS prefill failed: %s", exc, exc_info=True)
                self._fail(ready[0][0], exc)
                return
            log.warning("XTTS batched prefill failed; prefilling its sequences one by one", exc_info=True)
            for sequence, _ in ready:
                self._prefill([sequence])
            return
        finite = torch.isfinite(logits).all(dim=-1).tolist()
        admitted: list[tuple[_Sequence, int, int]] = []  # (sequence, slot, row of the prefill)
        for row, (sequence, _) in enumerate(ready):
            request = sequence.request
            if not finite[row]:
                self._fail(
                    sequence,
                    SequenceFailed("XTTS produced non-finite logits (is the voice's conditioning valid?)"),
                )
                continue
            slot = len(self._slots)
            if slot != first + row:
                self.batch.move(first + row, slot)  # a failed row before it left a hole
            self._sampler.start(slot, request.sampling, self._prompt_tokens)
            sequence.vocoder = StreamingVocoder(
                self._decoder, request.speaker_embedding, request.length_scale
            )
            sequence.slot = slot
            self._slots.append(sequence)
            admitted.append((sequence, slot, row))
        for slot in range(len(self._slots), first + len(ready)):
            self.batch.release(slot)
        if not admitted:
            return
        rows = torch.zeros(len(self._slots), logits.shape[-1], device=logits.device, dtype=logits.dtype)
        advance = torch.zeros(len(self._slots), dtype=torch.bool, device=logits.device)
        for _, slot, row in admitted:
            rows[slot] = logits[row]
            advance[slot] = True
        tokens = self._sampler.choose(rows, advance).tolist()
        for sequence, slot, row in admitted:
            self._record(sequence, tokens[slot], latents[row])

    def _record(self, sequence: _Sequence, token: int, latent: torch.Tensor) -> None:
        sequence.tokens.append(token)
        sequence.pending.append(latent)
        limit = sequence.request.sampling.max_new_tokens
        if token == self._stop_token or len(sequence.tokens) >= limit:
            sequence.ended = True

    def _step(self) -> None:
        rows = self._slots
        if not rows:
            return
        advance_list = [not s.ended and not s.done and not s.cancelled and not self._paused(s) for s in rows]
        if not any(advance_list):
            return
        count = len(rows)
        device = self.batch.device
        last = torch.tensor([s.tokens[-1] for s in rows], device=device)
        index = torch.tensor([len(s.tokens) for s in rows], device=device)
        gpt = self._gpt
        inputs = gpt.mel_embedding(last) + gpt.mel_pos_embedding.emb(index)
        try:
            latents, logits = self.batch.step(count, inputs, advance_list, self.graphs)
        except Exception as exc:
            log.exception("XTTS decode step failed")
            for sequence in rows:
                self._fail(sequence, exc)
            return
        self.steps += 1
        self.stepped_rows += count
        # A row whose logits are not finite fails alone; its row is neutralised for the draw.
        finite = torch.isfinite(logits).all(dim=-1)
        logits = torch.where(finite[:, None], logits, torch.zeros_like(logits))
        advance = torch.tensor(advance_list, device=device) & finite
        tokens = self._sampler.choose(logits, advance)
        # One transfer to the host per step: the tokens, and which rows were finite.
        drawn, ok = torch.stack([tokens, finite.long()]).tolist()
        for row, sequence in enumerate(rows):
            if not advance_list[row] or sequence.done:
                continue
            if not ok[row]:
                self._fail(sequence, SequenceFailed("XTTS produced non-finite logits"))
                continue
            self._record(sequence, drawn[row], latents[row])

    def _vocode(self) -> None:
        due = [s for s in self._slots if s.due() and not s.cancelled and not self._paused(s)]
        if not due:
            return
        first = [s for s in due if s.waiting_first_audio]
        if any(s.waiting_first_audio and not s.cancelled for s in self._slots):
            # Only first chunks now: later ones wait until every newcomer has its first audio.
            due = first
        # First chunks someone waits for, then the chunks waiting longest (most latents pending).
        due.sort(key=lambda s: (not s.waiting_first_audio, -len(s.pending)))
        if self.vocoder_batch is not None:
            due = due[: self.vocoder_batch]
        windows: list[tuple[_Sequence, torch.Tensor, int, int]] = []
        for sequence in due:
            assert sequence.vocoder is not None
            latents = (
                torch.stack(sequence.pending)
                if sequence.pending
                else torch.zeros(0, self.batch.shape.model_dim, device=self.batch.device)
            )
            sequence.pending = []
            if sequence.ended:
                self._vocode_alone(sequence, latents, final=True)
                continue
            cut = sequence.vocoder.window(latents)
            if cut is not None:
                windows.append((sequence, *cut))
        if windows:
            self._vocode_batch(windows)

    def _vocode_alone(self, sequence: _Sequence, latents: torch.Tensor, final: bool) -> None:
        assert sequence.vocoder is not None
        try:
            audio = sequence.vocoder.push(latents, final=final)
        except Exception as exc:
            log.exception("XTTS vocoder failed")
            self._fail(sequence, exc)
            return
        self._deliver(sequence, audio)
        if final:
            self._finish(sequence)

    def _vocode_batch(self, windows: list[tuple[_Sequence, torch.Tensor, int, int]]) -> None:
        """Later chunks of several sequences in one generator call. Windows that are not a
        sentence's end can be padded on the right: their kept audio lies at least the receptive
        field away from the padding (the vocoder holds the right margin back)."""
        generator = self._decoder.waveform_decoder
        try:
            if len(windows) == 1:
                sequence, window, keep_from, keep = windows[0]
                outputs = [generator(window[None], g=sequence.request.speaker_embedding)]
            else:
                width = max(window.shape[-1] for _, window, _, _ in windows)
                frames = torch.stack(
                    [
                        torch.nn.functional.pad(window, (0, width - window.shape[-1]))
                        for _, window, _, _ in windows
                    ]
                )
                g = torch.cat([sequence.request.speaker_embedding for sequence, _, _, _ in windows])
                batched = generator(frames, g=g)
                outputs = [batched[i : i + 1] for i in range(len(windows))]
        except Exception:
            log.exception("XTTS batched vocoder call failed; decoding its windows one by one")
            outputs = []
            for sequence, window, _, _ in windows:
                try:
                    outputs.append(generator(window[None], g=sequence.request.speaker_embedding))
                except Exception as exc:
                    self._fail(sequence, exc)
                    outputs.append(None)
        for (sequence, _, keep_from, keep), audio in zip(windows, outputs, strict=True):
            if audio is None or sequence.done:
                continue
            assert sequence.vocoder is not None
            self._deliver(sequence, sequence.vocoder.keep(audio, keep_from, keep))

    def _deliver(self, sequence: _Sequence, audio: torch.Tensor) -> None:
        if sequence.done or not audio.numel():
            return
        chunk = audio.float().clamp(-1.0, 1.0).cpu().numpy().astype(np.float32, copy=True)
        sequence.delivered += 1
        sequence.output.put(chunk)

    def _finish(self, sequence: _Sequence) -> None:
        if not sequence.done:
            sequence.done = True
            sequence.output.put(_END)

    def _fail(self, sequence: _Sequence, exc: BaseException) -> None:
        if not sequence.done:
            sequence.done = True
            sequence.output.put(exc)

    def _compact(self) -> None:
        """Drop finished and cancelled sequences, moving the last resident into each freed slot."""
        slot = 0
        while slot < len(self._slots):
            sequence = self._slots[slot]
            if sequence.cancelled and not sequence.done:
                self._finish(sequence)
            if not sequence.done:
                slot += 1
                continue
            last = len(self._slots) - 1
            if slot != last:
                self.batch.move(last, slot)
                self._sampler.move(last, slot)
                moved = self._slots[last]
                moved.slot = slot
                self._slots[slot] = moved
            self.batch.release(last)
            self._slots.pop()
            sequence.slot = None
