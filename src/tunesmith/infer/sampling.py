"""Choosing each row's next token from its logits, with the row's own settings.

Rows that only want the most likely token share one ``argmax`` over the batch; the others go
through :class:`RowSampler` one by one: repetition penalty (transformers' definition, over prompt
and output), frequency and presence penalties (OpenAI's, over the output), ``logit_bias``,
temperature, top-k, top-p, a JSON-object constraint, and the log-probabilities to report. Each
seeded row samples from its own generator, so a seed gives the same text whatever else is in
the batch.
"""

from __future__ import annotations

import torch

from .engine import GenParams, TokenChoice

CANDIDATES = 256  # tokens ranked for top-k/top-p before falling back to the whole vocabulary


class RowSampler:
    """The next-token rule of one row.

    Args:
        params: the row's generation parameters.
        prompt_ids: the prompt (the repetition penalty covers it, as in transformers).
        constraint: a JSON constraint (``json_mode.JsonObjectConstraint``) or None.
    """

    def __init__(self, params: GenParams, prompt_ids: list[int], constraint=None):
        self.params = params
        self.prompt = torch.tensor(sorted(set(prompt_ids)), dtype=torch.long)
        self.constraint = constraint
        self.generator = None
        if params.seed is not None and not params.greedy:
            self.generator = torch.Generator().manual_seed(int(params.seed) % 2**64)

    def choose(self, logits: torch.Tensor, generated: list[int]) -> TokenChoice:
        """The next token for ``logits`` (V,) fp32 after ``generated`` output tokens."""
        p = self.params
        report = torch.log_softmax(logits, -1) if p.logprobs else None
        logits = self._adjust(logits.clone(), generated)
        if self.constraint is not None:
            token = self.constraint.pick(logits, self._draw)
        else:
            token = self._draw(logits)
        return _choice(token, report, p.top_logprobs)

    def _adjust(self, logits: torch.Tensor, generated: list[int]) -> torch.Tensor:
        p = self.params
        if p.repetition_penalty != 1.0:
            seen = torch.cat([self.prompt, torch.tensor(generated, dtype=torch.long)]).unique()
            picked = logits[seen]
            logits[seen] = torch.where(picked > 0, picked / p.repetition_penalty,
                                       picked * p.repetition_penalty)
        if (p.frequency_penalty or p.presence_penalty) and generated:
            ids, counts = torch.tensor(generated, dtype=torch.long).unique(return_counts=True)
            logits[ids] -= counts.to(logits.dtype) * p.frequency_penalty + p.presence_penalty
        for token, bias in p.logit_bias.items():
            if 0 <= token < logits.shape[-1]:
                logits[token] += bias
        return logits

    def _draw(self, logits: torch.Tensor) -> int:
        """Greedy, or a sample after temperature, top-k and top-p. The candidates come from a
        ``topk`` of at most ``CANDIDATES`` tokens when that already holds the top-p mass (a full
        sort of a 50k vocabulary costs ~100x more), else from as many as needed."""
        p = self.params
        if p.greedy:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / p.temperature, -1)
        vocab = probs.shape[-1]
        k = p.top_k if 0 < p.top_k < vocab else vocab
        if k == vocab and p.top_p >= 1.0:
            return int(self._pick(probs))
        weights, ids = torch.topk(probs, min(k, CANDIDATES))
        if len(ids) < k and (p.top_p >= 1.0 or float(weights.sum()) < p.top_p):
            weights, ids = torch.topk(probs, k)
        if p.top_p < 1.0:
            keep = weights.cumsum(0) - weights < p.top_p  # the smallest set holding top_p
            weights, ids = weights[keep], ids[keep]
        return int(ids[self._pick(weights)])

    def _pick(self, weights: torch.Tensor) -> int:
        """An index drawn in proportion to ``weights`` (the row's generator when seeded)."""
        cumulative = weights.cumsum(0)
        draw = torch.rand(1, generator=self.generator, dtype=cumulative.dtype) * cumulative[-1]
        return int(torch.searchsorted(cumulative, draw, right=True).clamp(max=len(weights) - 1))


def _choice(token: int, report: torch.Tensor | None, top_n: int) -> TokenChoice:
    if report is None:
        return TokenChoice(token)
    top = None
    if top_n:
        values, ids = torch.topk(report, min(top_n, report.shape[-1]))
        top = list(zip(ids.tolist(), values.tolist()))
    return TokenChoice(token, float(report[token]), top)


def choose_tokens(logits: torch.Tensor, samplers: list[RowSampler],
                  generated: list[list[int]]) -> list[TokenChoice]:
    """Next tokens for a batch: ``logits`` (B, V) fp32, one sampler and output list per row."""
    plain = [i for i, s in enumerate(samplers) if s.params.plain_greedy]
    choices: list[TokenChoice | None] = [None] * len(samplers)
    if plain:
        rows = torch.tensor(plain) if len(plain) < len(samplers) else slice(None)
        for i, token in zip(plain, torch.argmax(logits[rows], -1).tolist()):
            choices[i] = TokenChoice(token)
    for i, sampler in enumerate(samplers):
        if choices[i] is None:
            choices[i] = sampler.choose(logits[i], generated[i])
    return choices
