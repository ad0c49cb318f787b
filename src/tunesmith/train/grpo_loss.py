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


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor | None,
              ref_logps: torch.Tensor | None, advantages: torch.Tensor, mask: torch.Tensor,
              s: LossSettings) -> tuple[torch.Tensor, dict]:
    """The clipped GRPO objective of one batch and its metrics.

    Args:
        logps: (B, C) current policy log-probs (with gradient).
        old_logps: (B, C) log-probs at generation time, or None (on-policy: ``logps`` detached).
        ref_logps: (B, C) reference log-probs (needed when ``beta`` != 0).
        advantages: (B,).
        mask: (B, C) 1 on completion tokens.
    Returns:
        The loss and ``{kl, clip_ratio/low_mean, clip_ratio/high_mean, clip_ratio/region_mean}``.
    """
    mask = mask.to(logps.dtype)
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
    loss = _aggregate(per_token, mask, s)
    low = ((ratio < 1 - s.epsilon_low) & (adv < 0)).float()
    high = ((ratio > 1 + s.epsilon_high) & (adv > 0)).float()
    metrics["clip_ratio/low_mean"] = _masked_mean(low, mask)
    metrics["clip_ratio/high_mean"] = _masked_mean(high, mask)
    metrics["clip_ratio/region_mean"] = _masked_mean(torch.maximum(low, high), mask)
    return loss, metrics


def _aggregate(per_token: torch.Tensor, mask: torch.Tensor, s: LossSettings) -> torch.Tensor:
    """grpo: mean over each sequence's tokens, then over sequences; dr_grpo: sum over a
    constant (rows x max_completion_length); dapo: sum over the batch's token count."""
    if s.loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if s.loss_type == "dr_grpo":
        return (per_token * mask).sum() / (per_token.size(0) * s.max_completion_length)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
