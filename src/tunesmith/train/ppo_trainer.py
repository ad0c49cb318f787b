"""``PPOTrainer``: PPO against a reward model on an OnlineTrainer (LLaMA-Factory's ``stage: ppo``).

Each prompt gets one completion, scored by the reward model; per-token rewards are the KL
penalty to the reference plus the score at the last token; GAE over the policy's value head
gives advantages and returns; each batch of completions then serves ``ppo_epochs`` optimizer
steps of the clipped policy + value loss (``ppo_loss.py``). The KL coefficient adapts towards
``ppo_target``.

Batches: a micro-batch is ``per_device_train_batch_size`` prompts; a window of
``gradient_accumulation_steps x ppo_buffer_size`` micro-batches is repeated ``ppo_epochs`` times
(LLaMA-Factory: PPO batch = that window, mini-batch = one micro-batch). Advantages are whitened
per micro-batch (TRL whitens over the whole PPO batch).
"""

from __future__ import annotations

import torch

from .online_trainer import OnlineTrainer
from .policy_logps import completion_hidden, logps_from_hidden
from .ppo_loss import AdaptiveKL, RunningMoments, gae, masked_mean, ppo_loss, token_rewards
from .reward_model import value_head


class PPOTrainer(OnlineTrainer):
    """PPO; ``ppo`` is the stage's parameters (``train/stages/ppo.py``)."""

    def __init__(self, *args, ppo, **kwargs):
        super().__init__(*args, num_generations=1, passes=ppo.ppo_epochs,
                         reward_error_limit=ppo.reward_error_limit,
                         log_completions_steps=ppo.log_completions_steps, **kwargs)
        self.window *= ppo.ppo_buffer_size
        self.ppo = ppo
        self.kl_ctl = AdaptiveKL(ppo.ppo_target)
        self.moments = RunningMoments() if ppo.ppo_score_norm else None

    def _logps_values(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        picked = completion_hidden(model, batch)
        logps = logps_from_hidden(model, picked, batch["completion_ids"], self.gen.temperature)
        head = value_head(model)
        values = head(picked.to(head.weight.dtype)).squeeze(-1).float()  # (B, C)
        return logps.float(), values

    def make_batch(self, examples) -> dict:
        rollout, per_func, scores = self.rollout(examples)
        batch = self.sequences(rollout)
        raw = scores.clone()
        if self.moments is not None:
            scores = self.moments.normalize(scores)
        device_batch = self.on_device(batch)
        with torch.no_grad(), self.compute_loss_context_manager():
            logps, values = self._logps_values(self.model, device_batch)
        ref = self.reference_logps(batch)
        mask = device_batch["completion_mask"].float()
        rewards, kl = token_rewards(scores.to(logps.device), logps, ref, mask, self.kl_ctl.value)
        advantages, returns = gae(values, rewards, mask, self.ppo.ppo_whiten_rewards)
        batch.update(old_logps=logps, old_values=values, advantages=advantages, returns=returns)
        mean_kl = float(kl.sum(1).mean())
        self.metrics.add(**{"objective/kl": mean_kl, "objective/kl_coef": self.kl_ctl.value,
                            "ppo/returns/mean": float(masked_mean(returns, mask)),
                            "ppo/values/mean": float(masked_mean(values, mask))})
        self.kl_ctl.update(mean_kl, len(examples))
        per_seq = (advantages * mask).sum(1) / mask.sum(1).clamp(min=1)
        self.record(examples, rollout, per_func, raw, per_seq)
        return batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logps, values = self._logps_values(model, inputs)
        parts = ppo_loss(logps, inputs["old_logps"], values, inputs["old_values"],
                         inputs["advantages"], inputs["returns"], inputs["completion_mask"])
        self.metrics.add(**{"ppo/loss/policy": parts.policy_loss,
                            "ppo/loss/value": parts.value_loss,
                            "ppo/policy/clipfrac": parts.clip_frac,
                            "ppo/val/clipfrac": parts.value_clip_frac,
                            "ppo/policy/approxkl": parts.approx_kl})
        return parts.loss
