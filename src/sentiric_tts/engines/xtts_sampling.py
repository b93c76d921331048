"""Choosing the next audio token of every sequence in a batch, each with its own sampling settings.

The same processors, in the same order and with the same arithmetic, as transformers applies
when coqui's XTTS generation calls it with `do_sample=True`: repetition penalty over every token
the sequence has seen (its prompt placeholders included), the stop token forbidden until
`min_new_tokens`, then temperature, top-k and top-p, then a draw. Each is one vectorised
operation over the batch, with a per-row value; greedy rows (top_k 1) take the highest score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """One sequence's settings (top_k 1 is greedy decoding)."""

    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    min_new_tokens: int
    max_new_tokens: int

    @property
    def greedy(self) -> bool:
        return self.top_k == 1


class BatchSampler:
    """Per-row sampling state for up to `rows` sequences, rows kept in step with the GPT's slots."""

    def __init__(self, rows: int, vocab: int, stop_token: int, device: torch.device) -> None:
        self.vocab = vocab
        self.stop_token = stop_token
        self.device = device
        self.seen = torch.zeros(rows, vocab, dtype=torch.bool, device=device)
        """Tokens each row has seen (for the repetition penalty)."""
        self.generated = torch.zeros(rows, dtype=torch.long, device=device)
        self.temperature = torch.ones(rows, device=device)
        self.top_k = torch.zeros(rows, dtype=torch.long, device=device)
        self.top_p = torch.ones(rows, device=device)
        self.penalty = torch.ones(rows, device=device)
        self.min_new = torch.zeros(rows, dtype=torch.long, device=device)

    def start(self, row: int, sampling: Sampling, prompt_tokens: tuple[int, ...]) -> None:
        self.seen[row] = False
        self.seen[row, list(prompt_tokens)] = True
        self.generated[row] = 0
        self.temperature[row] = sampling.temperature
        self.top_k[row] = min(max(sampling.top_k, 0), self.vocab)
        self.top_p[row] = sampling.top_p
        self.penalty[row] = sampling.repetition_penalty
        self.min_new[row] = sampling.min_new_tokens

    def move(self, source: int, target: int) -> None:
        for state in (
            self.seen,
            self.generated,
            self.temperature,
            self.top_k,
            self.top_p,
            self.penalty,
            self.min_new,
        ):
            state[target] = state[source]

    @torch.inference_mode()
    def choose(self, logits: torch.Tensor, advance: torch.Tensor | None = None) -> torch.Tensor:
        """Next token of rows [0, n) from their logits ([n, V]); rows where `advance` ([n] bool)
        is true record it (seen, counted), the others are left as they were."""
        n = logits.shape[0]
        scores = logits.float()
        penalty = self.penalty[:n, None]
        penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
        scores = torch.where(self.seen[:n], penalised, scores)
        too_early = self.generated[:n] < self.min_new[:n]
        scores[:, self.stop_token] = torch.where(
            too_early, torch.full_like(scores[:, self.stop_token], -torch.inf), scores[:, self.stop_token]
        )
        temperature = self.temperature[:n, None]
        scores = torch.where(temperature != 1.0, scores / temperature, scores)
        scores = self._top_k(scores, self.top_k[:n])
        scores = self._top_p(scores, self.top_p[:n])
        probs = torch.softmax(scores, dim=-1)
        greedy = self.top_k[:n] == 1
        tokens = torch.where(
            greedy, scores.argmax(dim=-1), torch.multinomial(probs, num_samples=1).squeeze(1)
        )
        rows = torch.arange(n, device=self.device)
        if advance is None:
            advance = torch.ones(n, dtype=torch.bool, device=self.device)
        self.seen[rows[advance], tokens[advance]] = True
        self.generated[:n] += advance.long()
        return tokens

    @staticmethod
    def _top_k(scores: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
        # transformers: scores below the k-th highest are removed (ties at the k-th are kept); 0 = off.
        ranked = torch.sort(scores, dim=-1, descending=True).values
        kth = ranked.gather(1, (top_k.clamp(min=1) - 1)[:, None])
        remove = (scores < kth) & (top_k[:, None] > 0)
        return scores.masked_fill(remove, -torch.inf)

    @staticmethod
    def _top_p(scores: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
        # transformers: ascending sort, drop the tokens whose cumulative probability stays at or
        # below 1 - top_p, always keeping the most likely one; off at top_p 1.
        ascending, order = torch.sort(scores, dim=-1, descending=False)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - top_p)[:, None]
        drop[:, -1] = False
        drop &= (top_p < 1.0)[:, None]
        remove = drop.scatter(1, order, drop)
        return scores.masked_fill(remove, -torch.inf)
