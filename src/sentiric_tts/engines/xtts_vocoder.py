"""XTTS's HiFiGAN decoder run over a growing sentence window by window, with the output of one
decode of the whole sentence, at a cost that grows linearly with the sentence.

coqui's `inference_stream` re-decodes every latent of the sentence at each chunk, so a sentence's
vocoder work grows with the square of its length. Here each chunk decodes only its new frames
plus `margin` frames of context on each side:

  GPT latents --linear x length_scale (speed)--> --linear x4--> --linear x 24000/22050-->
  decoder-input frames --HiFiGAN generator (256 samples per frame)--> audio

- The three linear interpolations are what `HifiDecoder.forward` (and the engine's speed) apply
  to the whole sentence. F.interpolate with a given scale factor maps output frame j to source
  position (j + 0.5) / scale - 0.5 whatever the input's length, so an output frame whose two
  source frames both exist already has its final value; only the last frames of a sentence
  (clamped at its end) wait for the sentence to end. Each stage is fed incrementally and passes on
  only frames that can no longer change (F.interpolate copies an input whose output would be as
  long as itself: a short sequence's frames wait for its end). Windows are cut in the decoder-input domain (after the
  non-integer 24000/22050 step), not in latent units.
- The generator is convolutional, shift-equivariant at 256 samples per frame: an output frame
  depends on `RECEPTIVE_FRAMES` input frames on each side (measured: a perturbed frame changes
  the output 9.6 frames before and 10.6 after it, nothing farther). Decoding a window with
  `margin` >= that many frames of context on both sides and keeping its middle gives the whole
  decode's samples to float rounding (measured 3e-8 at 12 frames). The right margin of each chunk
  is held back until the next chunk brings its context, or the sentence ends.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

RECEPTIVE_FRAMES = 11
MARGIN_FRAMES = 12
"""Context decoded on each side of a window, in decoder-input frames (>= RECEPTIVE_FRAMES)."""


class LinearStage:
    """One `F.interpolate(mode="linear", scale_factor=scale)` over a sequence that grows, emitting
    each output frame once it equals that frame of the interpolation of the whole sequence."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._frames: torch.Tensor | None = None  # [C, n]: every input frame so far
        self._emitted = 0

    def _settled(self, n: int) -> int:
        """Output frames of an n-frame input that no later input frame can change: frame j is
        settled when its source position (j + 0.5) / scale - 0.5 is at most n - 1.5 (both of its
        source frames exist; the half-frame keeps clear of float rounding at the edge)."""
        if n < 2:
            return 0
        return max(0, math.floor(self.scale * (n - 1) - 0.5) + 1)

    def feed(self, frames: torch.Tensor, final: bool) -> torch.Tensor:
        """Append `frames` ([C, k]); return the output frames ([C, m]) settled since the last call
        (with `final`, every remaining one: the sequence has ended)."""
        if self._frames is None:
            self._frames = frames
        elif frames.shape[-1]:
            self._frames = torch.cat([self._frames, frames], dim=-1)
        n = self._frames.shape[-1]
        total = math.floor(n * self.scale)
        if total == n and not final:
            # F.interpolate copies its input when the output has the input's length, ignoring the
            # scale: until the sequence is long enough that this cannot happen at its end, no
            # frame is known.
            return self._frames[:, :0]
        ready = total if final else min(total, self._settled(n))
        if ready <= self._emitted:
            return self._frames[:, :0]
        # The whole input is interpolated each time so every frame is computed exactly as the
        # whole-sentence decode computes it; this costs a few microseconds per frame, nothing
        # beside the generator.
        out = F.interpolate(self._frames[None], scale_factor=[self.scale], mode="linear")[0]
        new = out[:, self._emitted : ready]
        self._emitted = ready
        return new


def generator_hop(generator: Any) -> int:
    """Output samples per input frame of a HiFiGAN generator (the product of its upsampling)."""
    return math.prod(int(up.stride[0]) for up in generator.ups)


def decoder_stages(decoder: Any, length_scale: float) -> list[LinearStage]:
    """The interpolations between GPT latents and the generator, in the order they apply."""
    stages = [] if length_scale == 1.0 else [LinearStage(length_scale)]
    stages.append(LinearStage(decoder.ar_mel_length_compression / decoder.output_hop_length))
    if decoder.output_sample_rate != decoder.input_sample_rate:
        stages.append(LinearStage(decoder.output_sample_rate / decoder.input_sample_rate))
    return stages


class StreamingVocoder:
    """One sentence's audio, decoded as its GPT latents arrive.

    `decoder` is coqui's HifiDecoder; `speaker_embedding` its [1, 512, 1] conditioning. `push`
    returns the audio (1-D float32 tensor on the decoder's device) that the latents so far
    settle; concatenated, the pushes equal `decoder(all latents interpolated by length_scale)`.
    """

    def __init__(
        self,
        decoder: Any,
        speaker_embedding: torch.Tensor,
        length_scale: float = 1.0,
        margin: int = MARGIN_FRAMES,
    ) -> None:
        if margin < RECEPTIVE_FRAMES:
            raise ValueError(f"margin must be at least {RECEPTIVE_FRAMES} frames (the receptive field)")
        self._generator = decoder.waveform_decoder
        self._g = speaker_embedding
        self._stages = decoder_stages(decoder, length_scale)
        self._margin = margin
        self.hop = generator_hop(self._generator)
        self._z: torch.Tensor | None = None  # decoder-input frames from `_z_start` on
        self._z_start = 0
        self._emitted = 0  # decoder-input frames whose audio has been returned
        self.decoded_frames = 0
        """Generator input frames decoded so far, margins included (the vocoder's work)."""

    def _settle(self, latents: torch.Tensor, final: bool) -> int:
        frames = latents.transpose(0, 1).float()
        for stage in self._stages:
            frames = stage.feed(frames, final)
        if self._z is None:
            self._z = frames
        elif frames.shape[-1]:
            self._z = torch.cat([self._z, frames], dim=-1)
        return self._z_start + self._z.shape[-1]

    def window(self, latents: torch.Tensor, final: bool = False) -> tuple[torch.Tensor, int, int] | None:
        """Take new latents ([k, C]); the generator input window to decode now, as
        (frames [C, w], first kept frame in the window, kept frames), or None when nothing new is
        settled. `decode` or a batched caller runs the generator and `keep` cuts the result."""
        total = self._settle(latents, final)
        end = total if final else total - self._margin
        if end <= self._emitted:
            return None
        assert self._z is not None
        start = max(self._z_start, self._emitted - self._margin)
        window = self._z[:, start - self._z_start :]
        keep_from, keep = self._emitted - start, end - self._emitted
        self._emitted = end
        # Frames before the next window's left margin are never read again.
        drop = max(0, self._emitted - self._margin - self._z_start)
        if drop:
            self._z = self._z[:, drop:]
            self._z_start += drop
        self.decoded_frames += window.shape[-1]
        return window, keep_from, keep

    def keep(self, audio: torch.Tensor, keep_from: int, keep: int) -> torch.Tensor:
        """The kept samples of a window's generator output."""
        return audio.reshape(-1)[keep_from * self.hop : (keep_from + keep) * self.hop]

    def push(self, latents: torch.Tensor, final: bool = False) -> torch.Tensor:
        """New latents in ([k, C], k may be 0 with `final`); settled audio out (may be empty)."""
        cut = self.window(latents, final)
        if cut is None:
            return torch.zeros(0, device=latents.device)
        window, keep_from, keep = cut
        audio = self._generator(window[None], g=self._g)
        return self.keep(audio, keep_from, keep)
