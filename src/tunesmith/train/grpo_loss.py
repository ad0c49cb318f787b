"""GRPO's math: group-normalized advantages and the clipped surrogate with a KL penalty.

The same formulas as TRL's GRPOTrainer (``loss_type`` grpo, dr_grpo, dapo; ``scale_rewards``
group, batch, none; ``epsilon``/``epsilon_high`` clipping; the k3 KL estimator
``exp(ref - logp) - (ref - logp) - 1`` weighted by the probability ratio), checked equal to it in tests/unit/train/test_grpo_trl.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")


def _std(x: torch.Tensor, dim=None) -> torch.Tensor:
    """Bessel-corrected standard deviation (as TRL's ``nanstd`` without NaNs)."""
    return x.std(dim=dim) if dim is not None else x.std()


def group_advantages(rewards: torch.Tensor, num_generations: int,
                     scale_rewards: str = "group") -> torch.Tensor:
    """Each completion's reward minus its group's mean, divided by the std (+1e-4) unless
    ``scale_rewards: none``.

    Args:
        rewards: (N,) weighted rewards, N = prompts x num_generations, groups contiguous.
    Returns:
        (N,) advantages.
    """
    grouped = rewards.view(-1, num_generations)  # (P, G)
    mean = grouped.mean(dim=1).repeat_interleave(num_generations)
    advantages = rewards - mean
    if scale_rewards == "none":
        return advantages
    if scale_rewards == "group":
        std = (_std(grouped, dim=1) if num_generations > 1
               else torch.zeros(grouped.shape[0])).repeat_interleave(num_generations)
    else:
        std = _std(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
    return advantages / (std + 1e-4)


@dataclass
class LossSettings:
    loss_type: str = "dapo"
    beta: float = 0.0
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    max_completion_length: int = 256


@dataclass
class Totals:
    """The whole batch's row and completion-token counts, when the loss sees only some rows.

    With ``beta`` 0, a row whose advantage is exactly 0 adds exactly 0 to the loss and to every
    gradient, so its forward and backward pass can be skipped (:func:`live_groups`); the loss is
    still normalized over the whole batch, so it and its gradients stay those of the whole batch.
    """

    rows: int
    tokens: float


def live_groups(advantages: torch.Tensor, num_generations: int, beta: float) -> list[int]:
    """The rows of the groups with a non-zero advantage (all rows when ``beta`` != 0: the KL
    term has a gradient on every row)."""
    if beta != 0.0:
        return list(range(advantages.numel()))
    live = (advantages.view(-1, num_generations) != 0).any(dim=1)
    return [g * num_generations + j for g in live.nonzero().flatten().tolist()
            for j in range(num_generations)]


def _masked_mean(x: torch.Tensor, mask: torch.Tensor, total: float | None = None) -> float:
    return float((x * mask).sum() / (mask.sum().clamp(min=1.0) if total is None
                                     else max(total, 1.0)))


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor | None,
              ref_logps: torch.Tensor | None, advantages: torch.Tensor, mask: torch.Tensor,
              s: LossSettings, totals: Totals | None = None) -> tuple[torch.Tensor, dict]:
    """The clipped GRPO objective of one batch and its metrics.

    Args:
        logps: (B, C) current policy log-probs (with gradient).
        old_logps: (B, C) log-probs at generation time, or None (on-policy: ``logps`` detached).
        ref_logps: (B, C) reference log-probs (needed when ``beta`` != 0).
        advantages: (B,).
        mask: (B, C) 1 on completion tokens.
        totals: the whole batch's counts when these B rows are the live part of it (the others
            had advantage 0 and ``beta`` 0: they add nothing but the normalizer).
    Returns:
        The loss and ``{kl, clip_ratio/low_mean, clip_ratio/high_mean, clip_ratio/region_mean}``.
    """
    mask = mask.to(logps.dtype)
    tokens = None if totals is None else totals.tokens
    adv = advantages.unsqueeze(1)  # (B, 1)
    old = logps.detach() if old_logps is None else old_logps
    ratio = torch.exp(logps - old)
    clipped = torch.clamp(ratio, 1 - s.epsilon_low, 1 + s.epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    metrics = {}
    if s.beta != 0.0:
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1  # (B, C) k3 estimator, >= 0
        # times the ratio (value 1 on-policy, but differentiable): the unbiased reverse-KL
        # gradient (DeepSeek-V3.2; TRL's use_bias_correction_kl default)
        per_token = per_token + s.beta * kl * ratio
        metrics["kl"] = _masked_mean(kl.detach(), mask)
    loss = _aggregate(per_token, mask, s, totals)
    low = ((ratio < 1 - s.epsilon_low) & (adv < 0)).float()
    high = ((ratio > 1 + s.epsilon_high) & (adv > 0)).float()
    metrics["clip_ratio/low_mean"] = _masked_mean(low, mask, tokens)
    metrics["clip_ratio/high_mean"] = _masked_mean(high, mask, tokens)
    metrics["clip_ratio/region_mean"] = _masked_mean(torch.maximum(low, high), mask, tokens)
    return loss, metrics


def _aggregate(per_token: torch.Tensor, mask: torch.Tensor, s: LossSettings,
               totals: Totals | None = None) -> torch.Tensor:
    """grpo: mean over each sequence's tokens, then over sequences; dr_grpo: sum over a
    constant (rows x max_completion_length); dapo: sum over the batch's token count."""
    rows = per_token.size(0) if totals is None else totals.rows
    if s.loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / rows
    if s.loss_type == "dr_grpo":
        return (per_token * mask).sum() / (rows * s.max_completion_length)
    tokens = mask.sum() if totals is None else torch.tensor(totals.tokens)
    return (per_token * mask).sum() / tokens.clamp(min=1.0)
