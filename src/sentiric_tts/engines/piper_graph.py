"""A Piper (VITS) voice's ONNX graph, split at its decoder's input, so a sentence's audio can be
decoded in pieces and its first piece played while the rest is computed.

A Piper model turns phoneme ids into audio in one call: text encoder, duration predictor and flow
give a latent sequence `z` (one frame per `hop_length` samples), and the HiFi-GAN decoder turns
`z` into samples. The decoder is ~70 % of the work and purely convolutional, so a stretch of
frames decodes on its own, given enough frames of context on each side: with
`DECODER_CONTEXT_FRAMES` the pieces join bit for bit (`tests/service/test_piper_engine.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnx.utils
import onnxruntime

log = logging.getLogger(__name__)

# The decoder's first node in graphs exported by piper's trainer (`/dec/conv_pre`): its input is
# the latent sequence, masked.
_DECODER_ENTRY = "/dec/conv_pre/Conv"
_GRAPH_INPUTS = ("input", "input_lengths", "scales")

DECODER_CONTEXT_FRAMES = 16
"""Frames of `z` decoded on each side of a piece and dropped: the decoder's receptive field is
under 12 frames for the voices we ship (measured: 8 frames differ by up to 2e-3, 12 are exact)."""


@dataclass(frozen=True)
class SplitGraph:
    encoder: bytes
    """Phoneme ids (+ lengths, scales) -> latent frames `z`."""
    decoder: bytes
    """Latent frames -> audio samples."""
    latent_name: str


def split_graph(model: onnx.ModelProto) -> SplitGraph | None:
    """The graph cut at the decoder's input, or None if it is not a single-speaker Piper graph
    (a multi-speaker decoder also takes the speaker embedding; such voices render whole)."""
    entry = next((node for node in model.graph.node if node.name == _DECODER_ENTRY), None)
    inputs = {value.name for value in model.graph.input}
    if entry is None or not entry.input or not set(_GRAPH_INPUTS) <= inputs or "sid" in inputs:
        return None
    latent = entry.input[0]
    outputs = [model.graph.output[0].name]
    try:
        extractor = onnx.utils.Extractor(model)
        encoder = extractor.extract_model(list(_GRAPH_INPUTS), [latent])
        decoder = extractor.extract_model([latent], outputs)
    except Exception as exc:  # an unexpected graph: render it whole
        log.info("Piper graph not split (%s): sentences render whole", exc)
        return None
    if [value.name for value in decoder.graph.input] != [latent]:
        return None
    return SplitGraph(encoder.SerializeToString(), decoder.SerializeToString(), latent)


@dataclass(frozen=True)
class ChunkPlan:
    """How a sentence's frames are cut into decoded pieces: a short first one (its first audio),
    then the rest in one (each join costs 2 x DECODER_CONTEXT_FRAMES of decoding)."""

    first_frames: int = 48

    def pieces(self, frames: int) -> list[tuple[int, int]]:
        if frames <= self.first_frames + self.first_frames // 4:  # no tiny second piece
            return [(0, frames)]
        return [(0, self.first_frames), (self.first_frames, frames)]


class PiperModel:
    """One voice's model in onnxruntime sessions of one thread count: split (encode, then decode
    in pieces) when the graph allows it, else whole."""

    def __init__(
        self,
        make_session: Callable[[bytes], onnxruntime.InferenceSession],
        model_bytes: bytes,
        split: SplitGraph | None,
        speaker_id: int | None = None,
    ) -> None:
        """`speaker_id`: the speaker a multi-speaker voice speaks with (its config's default)."""
        # Only the name is kept: the graphs' bytes are in the sessions now.
        self._latent_name = split.latent_name if split is not None else None
        self._speaker_id = speaker_id
        if split is not None:
            self._encoder = make_session(split.encoder)
            self._decoder: onnxruntime.InferenceSession | None = make_session(split.decoder)
        else:
            self._encoder = make_session(model_bytes)
            self._decoder = None

    @property
    def first_session(self) -> onnxruntime.InferenceSession:
        return self._encoder

    @property
    def streams(self) -> bool:
        return self._decoder is not None

    def _inputs(self, phoneme_ids: list[int], scales: tuple[float, float, float]) -> dict[str, np.ndarray]:
        ids = np.asarray([phoneme_ids], dtype=np.int64)
        inputs = {
            "input": ids,
            "input_lengths": np.asarray([ids.shape[1]], dtype=np.int64),
            "scales": np.asarray(scales, dtype=np.float32),
        }
        if self._speaker_id is not None:
            inputs["sid"] = np.asarray([self._speaker_id], dtype=np.int64)
        return inputs

    def encode(self, phoneme_ids: list[int], scales: tuple[float, float, float]) -> np.ndarray:
        """The latent frames (1, channels, frames); only for a split model."""
        return np.asarray(self._encoder.run(None, self._inputs(phoneme_ids, scales))[0])

    def decode(self, latent: np.ndarray, start: int, end: int) -> np.ndarray:
        """Samples of frames [start, end), decoded with context on both sides and trimmed."""
        assert self._decoder is not None and self._latent_name is not None
        frames = latent.shape[-1]
        lo, hi = max(0, start - DECODER_CONTEXT_FRAMES), min(frames, end + DECODER_CONTEXT_FRAMES)
        if end <= start or hi <= lo:
            return np.zeros(0, dtype=np.float32)
        window = latent[:, :, lo:hi]
        audio = np.asarray(self._decoder.run(None, {self._latent_name: window})[0]).reshape(-1)
        hop = audio.size // (hi - lo)
        return audio[(start - lo) * hop : (end - lo) * hop]

    def render(self, phoneme_ids: list[int], scales: tuple[float, float, float]) -> np.ndarray:
        """A sentence's samples in one piece."""
        if self._decoder is None:
            return np.asarray(self._encoder.run(None, self._inputs(phoneme_ids, scales))[0]).reshape(-1)
        latent = self.encode(phoneme_ids, scales)
        return self.decode(latent, 0, latent.shape[-1])
