"""PPO's math, as LLaMA-Factory's PPO (TRL 0.9's PPOTrainer) computes it.

Per-token rewards are the KL penalty ``-kl_coef * (logp - ref_logp)`` with the reward model's
score added at the last completion token; advantages come from GAE (gamma 1, lambda 0.95) and
are whitened; the policy loss is the clipped surrogate (0.2), the value loss the clipped squared
error (0.2, weight 0.1); the KL coefficient adapts towards ``ppo_target`` (TRL's
AdaptiveKLController); ``ppo_score_norm`` scales scores by running statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

GAMMA, LAM = 1.0, 0.95
CLIP_RANGE, CLIP_RANGE_VALUE, VF_COEF = 0.2, 0.2, 0.1
INIT_KL_COEF, KL_HORIZON = 0.2, 10000


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``(x - mean) / std`` over the masked entries (the mean added back unless shift_mean)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    if n > 1:
        var = var * n / (n - 1)  # unbiased, as TRL's masked_var
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def token_rewards(score: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor,
                  mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards (B, C) and the per-token KL (B, C).

    Args:
        score: (B,) the reward model's score of each completion.
    """
    kl = (logps - ref_logps) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(1) - 1).clamp(min=0).long()  # (B,) index of each completion's last token
    rewards[torch.arange(len(score)), last] += score
    return rewards, kl


def gae(values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor,
        whiten_rewards: bool = False, gamma: float = GAMMA,
        lam: float = LAM) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over the completion tokens (``whiten_rewards``:
    rewards whitened first, their mean kept, as ``ppo_whiten_rewards``).

    Returns:
        advantages (whitened over the batch's tokens) and returns (advantages + values, before
        whitening), both (B, C).
    """
    values, rewards = values * mask, rewards * mask
    if whiten_rewards:
        rewards = whiten(rewards, mask, shift_mean=False)
    length = rewards.shape[1]
    last = torch.zeros_like(rewards[:, 0])
    reversed_adv = []
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else 0.0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        reversed_adv.append(last)
    advantages = torch.stack(reversed_adv[::-1], dim=1)
    returns = advantages + values
    return whiten(advantages, mask).detach() * mask, returns.detach()


@dataclass
class PPOLossParts:
    loss: torch.Tensor
    policy_loss: float
    value_loss: float
    clip_frac: float
    value_clip_frac: float
    approx_kl: float


def ppo_loss(logps, old_logps, values, old_values, advantages, returns, mask) -> PPOLossParts:
    """The clipped policy loss plus ``VF_COEF`` times the clipped value loss (all (B, C))."""
    mask = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1 - CLIP_RANGE, 1 + CLIP_RANGE)
    policy_loss = masked_mean(torch.max(pg1, pg2), mask)
    clipped = torch.clamp(values, old_values - CLIP_RANGE_VALUE, old_values + CLIP_RANGE_VALUE)
    vf = torch.max((values - returns) ** 2, (clipped - returns) ** 2)
    value_loss = 0.5 * masked_mean(vf, mask)
    return PPOLossParts(
        policy_loss + VF_COEF * value_loss, float(policy_loss), float(value_loss),
        float(masked_mean((pg2 > pg1).float(), mask)),
        float(masked_mean(((values - returns) ** 2 < (clipped - returns) ** 2).float(), mask)),
        float(0.5 * masked_mean((logps - old_logps).detach() ** 2, mask)))


class AdaptiveKL:
    """TRL's adaptive KL controller: the coefficient moves so the KL approaches ``target``."""

    def __init__(self, target: float, init: float = INIT_KL_COEF, horizon: int = KL_HORIZON):
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon


class RunningMoments:
    """Running mean and std of scores (``ppo_score_norm``), merged batch by batch."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-24

    def update(self, xs: torch.Tensor) -> None:
        n = xs.numel()
        if n == 0:
            return
        mean = float(xs.mean())
        var = float(xs.var(unbiased=False)) if n > 1 else 0.0
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        m2 = self.var * self.count + var * n + delta ** 2 * self.count * n / total
        self.var, self.count = m2 / total, total

    @property
    def std(self) -> float:
        return math.sqrt(self.var * self.count / max(self.count - 1, 1))

    def normalize(self, scores: torch.Tensor) -> torch.Tensor:
        self.update(scores)
        return (scores - self.mean) / (self.std + 1e-8)
