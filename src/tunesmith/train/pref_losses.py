"""Preference losses on per-sequence log-probs: the PREF_LOSSES registry (``pref_loss``), KTO's
loss and the reward model's pairwise loss.

Each takes summed answer log-probs and answer token counts (``pref_logps.sequence_logps``), and
returns the batch loss with the metrics TRL logs for the same loss, under the same names
(rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen,
logps/rejected, ...). The formulas follow TRL 1.16 (DPOTrainer sigmoid/hinge/ipo, ORPOTrainer,
CPOTrainer's simpo, KTOTrainer, RewardTrainer), checked to 1e-5 in
``tests/unit/train/test_pref_trl.py``; ``dpo_label_smoothing`` is the conservative-DPO
smoothing LLaMA-Factory applies, and ``pref_ftx`` adds LLaMA-Factory's SFT term (the chosen
answer's mean token NLL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..registry import Registry


@dataclass(frozen=True)
class PrefLoss:
    """``fn(policy, ref, counts, p) -> (losses per pair, chosen rewards, rejected rewards,
    extra metrics)``; ``policy``/``ref`` are (2B,) summed log-probs (chosen first)."""

    name: str
    fn: Callable
    needs_ref: bool = True
    average: bool = False  # logged log-probs are per-token means (ORPO, SimPO)


PREF_LOSSES: Registry[PrefLoss] = Registry("preference loss", key="pref_loss")


def _smoothed(logits: torch.Tensor, beta: float, smoothing: float) -> torch.Tensor:
    return (-F.logsigmoid(beta * logits) * (1 - smoothing)
            - F.logsigmoid(-beta * logits) * smoothing)


def _logratios(policy, ref):
    c, r = policy.chunk(2)
    rc, rr = ref.chunk(2)
    return c - rc, r - rr


def _sigmoid(policy, ref, counts, p):
    chosen, rejected = _logratios(policy, ref)
    losses = _smoothed(chosen - rejected, p.pref_beta, p.dpo_label_smoothing)
    return losses, p.pref_beta * chosen, p.pref_beta * rejected, {}


def _hinge(policy, ref, counts, p):
    chosen, rejected = _logratios(policy, ref)
    losses = torch.relu(1 - p.pref_beta * (chosen - rejected))
    return losses, p.pref_beta * chosen, p.pref_beta * rejected, {}


def _ipo(policy, ref, counts, p):
    """IPO on per-token mean log-ratios (TRL's and LLaMA-Factory's length normalisation)."""
    chosen, rejected = _logratios(policy, ref)
    nc, nr = counts.clamp(min=1).chunk(2)
    losses = (chosen / nc - rejected / nr - 1 / (2 * p.pref_beta)) ** 2
    return losses, p.pref_beta * chosen, p.pref_beta * rejected, {}


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -ln 2."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def _means(policy, counts):
    return (policy / counts.clamp(min=1)).chunk(2)


def _orpo(policy, ref, counts, p):
    """Odds-ratio loss plus the chosen answer's mean NLL (reference-free)."""
    c, r = _means(policy, counts)
    log_odds = (c - r) - (log1mexp(c) - log1mexp(r))
    ratio = F.logsigmoid(log_odds)
    nll = -c
    losses = nll - p.pref_beta * ratio
    extra = {"nll_loss": nll.mean(), "log_odds_ratio": ratio.mean(), "log_odds_chosen": log_odds.mean()}
    return losses, p.pref_beta * c, p.pref_beta * r, extra


def _simpo(policy, ref, counts, p):
    """SimPO: mean log-probs with a target margin ``simpo_gamma`` (reference-free)."""
    c, r = _means(policy, counts)
    losses = _smoothed((c - r) - p.simpo_gamma / p.pref_beta, p.pref_beta, p.dpo_label_smoothing)
    return losses, p.pref_beta * c, p.pref_beta * r, {}


for _loss in (PrefLoss("sigmoid", _sigmoid), PrefLoss("hinge", _hinge), PrefLoss("ipo", _ipo),
              PrefLoss("orpo", _orpo, needs_ref=False, average=True),
              PrefLoss("simpo", _simpo, needs_ref=False, average=True)):
    PREF_LOSSES.add(_loss.name, _loss)


def pair_loss(loss: PrefLoss, policy, ref, counts, params) -> tuple[torch.Tensor, dict]:
    """The batch loss and its metrics (plain floats) for one ``pref_loss``."""
    losses, chosen_rewards, rejected_rewards, extra = loss.fn(policy, ref, counts, params)
    total = losses.mean()
    c_logps, r_logps = _means(policy, counts) if loss.average else policy.chunk(2)
    if params.pref_ftx and loss.name != "orpo":  # ORPO has its own SFT term
        total = total + params.pref_ftx * (-_means(policy, counts)[0]).mean()
    chosen_rewards, rejected_rewards = chosen_rewards.detach(), rejected_rewards.detach()
    metrics = {"rewards/chosen": chosen_rewards.mean(), "rewards/rejected": rejected_rewards.mean(),
               "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
               "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
               "logps/chosen": c_logps.detach().mean(), "logps/rejected": r_logps.detach().mean(),
               **extra}
    return total, {k: float(v.detach()) if torch.is_tensor(v) else float(v)
                   for k, v in metrics.items()}


def kto_loss(policy, ref, kl_policy, kl_ref, desirable, counts, params) -> tuple[torch.Tensor, dict]:
    """KTO (TRL's KTOTrainer): each answer against the batch's KL estimate (no gradient).

    Args:
        policy, ref: (B,) summed answer log-probs; kl_policy, kl_ref: (B,) for the mismatched
            prompt/answer pairs; desirable: (B,) bool; counts: (B,) answer token counts.
    """
    kl = (kl_policy - kl_ref).mean().detach().clamp(min=0)
    ratio = policy - ref
    good, bad = ratio[desirable], ratio[~desirable]
    beta = params.pref_beta
    losses = torch.cat((params.kto_chosen_weight * (1 - torch.sigmoid(beta * (good - kl))),
                        params.kto_rejected_weight * (1 - torch.sigmoid(beta * (kl - bad)))))
    total = losses.nanmean()
    if params.pref_ftx and bool(desirable.any()):
        total = total + params.pref_ftx * (-(policy / counts.clamp(min=1))[desirable]).mean()
    metrics = {"kl": float(kl)}
    if good.numel():
        metrics.update({"rewards/chosen": float(beta * good.detach().mean()),
                        "logps/chosen": float(policy[desirable].detach().mean())})
    if bad.numel():
        metrics.update({"rewards/rejected": float(beta * bad.detach().mean()),
                        "logps/rejected": float(policy[~desirable].detach().mean())})
    if good.numel() and bad.numel():
        metrics["rewards/margins"] = metrics["rewards/chosen"] - metrics["rewards/rejected"]
    return total, metrics


def reward_loss(scores: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Pairwise (Bradley-Terry) loss on (2B,) scalar rewards, chosen first (TRL's RewardTrainer)."""
    chosen, rejected = scores.chunk(2)
    loss = -F.logsigmoid(chosen - rejected).mean()
    d = scores.detach()
    c, r = d.chunk(2)
    metrics = {"rewards/chosen": c.mean(), "rewards/rejected": r.mean(),
               "rewards/accuracies": (c > r).float().mean(), "rewards/margins": (c - r).mean()}
    return loss, {k: float(v) for k, v in metrics.items()}
