"""XTTS's GPT advanced for many sequences at once: one forward pass per step for every sequence
in the batch, each with its own preallocated KV cache slot.

transformers' `generate` (which coqui's streaming wraps) runs one sequence per call, reallocates
its cache as it grows and runs Python per token for its logits processors. This decoder runs
coqui's own modules (the GPT-2 blocks of `gpt.gpt`, the mel embeddings, `final_norm`,
`mel_head`), so real v2 weights and the random test checkpoint take the same code, with:

- a static KV cache: one tensor per layer for keys and one for values, [slots, heads, max_len,
  head_dim], allocated once; a sequence's slot is written in place, never copied as it grows;
- slots kept contiguous: sequences live in slots [0, n), so a step is one batched pass over a
  prefix of the cache; when a sequence leaves, the last one moves into its slot;
- attention through PyTorch's scaled_dot_product_attention over each slot's valid positions.

A step computes what transformers' GPT2Model computes (ln_1, attention, residual, ln_2, MLP,
residual per block, then ln_f), so tokens and latents are those of coqui's own generation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GptShape:
    layers: int
    heads: int
    head_dim: int
    model_dim: int
    vocab: int


def gpt_shape(gpt: Any) -> GptShape:
    """Dimensions of coqui's XTTS GPT (`model.gpt`)."""
    block = gpt.gpt.h[0]
    heads = int(block.attn.num_heads)
    dim = int(gpt.model_dim)
    return GptShape(
        layers=len(gpt.gpt.h),
        heads=heads,
        head_dim=dim // heads,
        model_dim=dim,
        vocab=int(gpt.mel_head.out_features),
    )


Linear = Callable[[torch.Tensor], torch.Tensor]


def onednn_linear(module: Any, rows: int) -> Linear:
    """`module` (transformers' Conv1D, weight [in, out], or an nn.Linear) as oneDNN's inner
    product over weights laid out once for products of about `rows` rows: the kernel PyTorch's
    own compiler emits for a frozen CPU linear (`mkldnn._linear_pointwise`).

    On the CPU, MKL's sgemm handles the few rows of a decode step badly. Measured on a 2-core
    EPYC, on the batch loop's thread (the process's one OpenMP team, see torch_threads), with
    weights streamed from memory as in a step, 1024 -> 4096 took 0.77 ms for one row and 2.18 ms
    for four through MKL, 0.69 and 0.92 ms through oneDNN on plain weights, 0.57 and 0.56 ms on
    weights laid out for it. oneDNN keeps its own copy of the weights, taken once."""
    weight = module.weight.detach()
    if _is_conv1d(module):
        weight = weight.t()  # oneDNN takes [out, in]
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)
    bias = None if module.bias is None else module.bias.detach().contiguous()

    def run(x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).contiguous()
        out = torch.ops.mkldnn._linear_pointwise(rows, packed, bias, "none", [], "")
        return out.view(*x.shape[:-1], out.shape[-1])

    return run


def _is_conv1d(module: Any) -> bool:
    return type(module).__name__ == "Conv1D"  # transformers.pytorch_utils.Conv1D: y = x W + b


@dataclass(frozen=True)
class _BlockLinears:
    qkv: Linear
    attn_out: Linear
    fc: Linear
    fc_out: Linear


def _block_linears(block: Any, fast_rows: int | None) -> _BlockLinears:
    def wrap(module: Any) -> Linear:
        return module if fast_rows is None else onednn_linear(module, fast_rows)

    return _BlockLinears(
        qkv=wrap(block.attn.c_attn),
        attn_out=wrap(block.attn.c_proj),
        fc=wrap(block.mlp.c_fc),
        fc_out=wrap(block.mlp.c_proj),
    )


class BatchedGpt:
    """The GPT's per-token work for up to `slots` sequences, each `max_len` positions long at most.

    Not thread-safe: one stepping thread owns it."""

    def __init__(
        self, gpt: Any, slots: int, max_len: int, device: str | torch.device, dtype: torch.dtype
    ) -> None:
        self.gpt = gpt
        self.shape = gpt_shape(gpt)
        self.slots = slots
        self.max_len = max_len
        self.device = torch.device(device)
        self.dtype = dtype
        s = self.shape
        cache_shape = (slots, s.heads, max_len, s.head_dim)
        self.keys = [torch.zeros(cache_shape, device=self.device, dtype=dtype) for _ in range(s.layers)]
        self.values = [torch.zeros(cache_shape, device=self.device, dtype=dtype) for _ in range(s.layers)]
        self.lengths = torch.zeros(slots, dtype=torch.long, device=self.device)
        """Positions filled in each slot's cache."""
        self.host_lengths = [0] * slots
        """The same on the host, so a step never waits for the device to learn a shape."""
        # The blocks' matrix products: the modules themselves, or on a float32 CPU their oneDNN
        # equivalents (see onednn_linear).
        fast = self.device.type == "cpu" and dtype == torch.float32 and torch.backends.mkldnn.is_available()
        fast_rows = slots if fast else None
        self._linears = [_block_linears(block, fast_rows) for block in gpt.gpt.h]
        self._mel_head: Linear = onednn_linear(gpt.mel_head, slots) if fast else gpt.mel_head

    @property
    def cache_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    # --- the blocks ---

    def _blocks(
        self,
        hidden: torch.Tensor,
        slots: slice | torch.Tensor,
        start: torch.Tensor,
        mask: torch.Tensor | None,
        length: int,
    ) -> torch.Tensor:
        """Run every block on `hidden` ([b, t, C]) for the slots `slots` (a range of them, whose
        cache is read in place, or an index of some, whose cache is gathered), writing each row's
        t new keys/values at positions start[row] .. start[row] + t - 1 and attending over the
        first `length` cached positions; `mask` ([b, 1, t, length] bool) says which of them each
        query may see, None for causal attention from position 0."""
        s = self.shape
        b, t, _ = hidden.shape
        positions = start[:, None] + torch.arange(t, device=hidden.device)[None, :]  # [b, t]
        index = (
            torch.arange(slots.start, slots.stop, device=hidden.device) if isinstance(slots, slice) else slots
        )
        rows = index[:, None].expand(b, t)
        for layer, block in enumerate(self.gpt.gpt.h):
            linears = self._linears[layer]
            residual = hidden
            x = block.ln_1(hidden)
            q, k, v = linears.qkv(x).split(s.model_dim, dim=2)
            q = q.view(b, t, s.heads, s.head_dim).transpose(1, 2)
            k = k.view(b, t, s.heads, s.head_dim)
            v = v.view(b, t, s.heads, s.head_dim)
            self.keys[layer][rows, :, positions] = k
            self.values[layer][rows, :, positions] = v
            keys = self.keys[layer][slots, :, :length]
            values = self.values[layer][slots, :, :length]
            attn = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=mask, is_causal=mask is None, scale=block.attn.scaling
            )
            x = linears.attn_out(attn.transpose(1, 2).reshape(b, t, s.model_dim))
            hidden = residual + x
            hidden = hidden + linears.fc_out(block.mlp.act(linears.fc(block.ln_2(hidden))))
        return self.gpt.gpt.ln_f(hidden)

    def _heads(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent, logits) of final hidden states: coqui yields final_norm(hidden) as the latent
        and its lm_head is mel_head(final_norm(hidden))."""
        latent = self.gpt.final_norm(hidden)
        return latent, self._mel_head(latent)

    # --- sequences ---

    @torch.inference_mode()
    def prefill(self, first_slot: int, prefixes: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Start sequences in slots first_slot, first_slot + 1, ... from their input embeddings
        (`prefixes`, each [1, P, C]: conditioning latents, text, start token), in one pass;
        returns (latents [n, C], logits [n, V]) of each one's last position.

        Shorter prefixes are padded on the right: under causal attention no real position sees a
        padding one, and a slot's length ends at its own prefix, so its next step overwrites what
        the padding wrote."""
        lengths = [prefix.shape[1] for prefix in prefixes]
        if max(lengths) > self.max_len:
            raise ValueError(f"prefix of {max(lengths)} positions; the cache holds {self.max_len}")
        longest = max(lengths)
        padded = torch.cat(
            [F.pad(prefix.to(self.dtype), (0, 0, 0, longest - prefix.shape[1])) for prefix in prefixes]
        )
        count = len(prefixes)
        start = torch.zeros(count, dtype=torch.long, device=self.device)
        hidden = self._blocks(padded, slice(first_slot, first_slot + count), start, None, longest)
        last = torch.tensor([length - 1 for length in lengths], device=self.device)
        for row, length in enumerate(lengths):
            self.host_lengths[first_slot + row] = length
        self.lengths[first_slot : first_slot + count] = torch.tensor(lengths, device=self.device)
        return self._heads(hidden[torch.arange(count, device=self.device), last])

    def step_body(
        self, count: int, inputs: torch.Tensor, advance: torch.Tensor, length: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The device work of a step over slots [0, count), attending over `length` positions;
        with `length` = max_len its shapes depend on `count` alone (what a CUDA graph captures)."""
        lengths = self.lengths[:count]
        visible = torch.arange(length, device=self.device)[None, :] <= lengths[:, None]  # [b, L]
        mask = visible[:, None, None, :]
        hidden = self._blocks(inputs[:, None].to(self.dtype), slice(0, count), lengths, mask, length)
        self.lengths[:count] += advance.long()
        return self._heads(hidden[:, 0])

    @torch.inference_mode()
    def step(
        self, count: int, inputs: torch.Tensor, advance: list[bool], graphs: GraphedSteps | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the sequences in slots [0, count) one position on; `inputs` ([count, C]) are their
        next input embeddings. Returns (latents [count, C], logits [count, V]). Rows where
        `advance` is false are computed but keep their length: their next step writes the same
        position again (a paused sequence rides along at no memory cost). With `graphs`, the
        step replays a captured CUDA graph when one fits."""
        longest = max(self.host_lengths[:count])
        if longest >= self.max_len:
            raise ValueError("a sequence reached the end of its cache")
        flags = torch.tensor(advance, device=self.device)
        result = graphs.replay(count, inputs, flags) if graphs is not None else None
        if result is None:
            result = self.step_body(count, inputs, flags, longest + 1)
        for row, moved in enumerate(advance):
            self.host_lengths[row] += int(moved)
        return result

    def move(self, source: int, target: int) -> None:
        """Move the sequence in slot `source` to slot `target` (keeping slots contiguous)."""
        if source == target:
            return
        length = int(self.lengths[source])
        for cache in (*self.keys, *self.values):
            cache[target, :, :length] = cache[source, :, :length]
        self.lengths[target] = length
        self.lengths[source] = 0
        self.host_lengths[target] = length
        self.host_lengths[source] = 0

    def release(self, slot: int) -> None:
        self.lengths[slot] = 0
        self.host_lengths[slot] = 0


class GraphedSteps:
    """Decode steps replayed from CUDA graphs, one per batch-size bucket (1, 2, 4, ... up to the
    slots): a step is hundreds of kernel launches (about a dozen per block), which at small batches cost more than the
    arithmetic. A bucket's graph attends over the whole cache (masked), so its shapes are fixed;
    rows past the live ones are empty slots, computed and ignored. Capture happens once, at
    warm-up; if it fails the steps run eagerly (one log line), never a failed request."""

    def __init__(self, gpt: BatchedGpt) -> None:
        self.gpt = gpt
        self.buckets: list[int] = []
        self._graphs: dict[
            int, tuple[Any, torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]
        ] = {}

    @staticmethod
    def bucket_sizes(slots: int) -> list[int]:
        sizes, size = [], 1
        while size < slots:
            sizes.append(size)
            size *= 2
        return [*sizes, slots]

    def capture(self) -> bool:
        """Capture every bucket's graph; False (and eager steps) when CUDA graphs do not work here."""
        gpt = self.gpt
        saved = gpt.lengths.clone()
        try:
            for size in self.bucket_sizes(gpt.slots):
                inputs = torch.zeros(size, gpt.shape.model_dim, device=gpt.device, dtype=gpt.dtype)
                flags = torch.zeros(size, dtype=torch.bool, device=gpt.device)
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream), torch.inference_mode():
                    for _ in range(2):  # kernels (and cuBLAS workspaces) warmed up outside the graph
                        gpt.step_body(size, inputs, flags, gpt.max_len)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph), torch.inference_mode():
                    outputs = gpt.step_body(size, inputs, flags, gpt.max_len)
                self._graphs[size] = (graph, inputs, flags, outputs)
                self.buckets.append(size)
        except Exception as exc:
            log.warning("XTTS decode steps run without CUDA graphs (capture failed: %s)", exc)
            self._graphs.clear()
            self.buckets = []
            return False
        finally:
            gpt.lengths.copy_(saved)
        return True

    def replay(
        self, count: int, inputs: torch.Tensor, flags: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        size = next((b for b in self.buckets if b >= count), None)
        if size is None:
            return None
        graph, static_inputs, static_flags, (latents, logits) = self._graphs[size]
        static_inputs[:count].copy_(inputs)
        static_inputs[count:].zero_()
        static_flags[:count].copy_(flags)
        static_flags[count:] = False
        graph.replay()
        return latents[:count], logits[:count]
