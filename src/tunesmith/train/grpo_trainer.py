"""``GRPOTrainer``: group-relative advantages and the clipped objective on an OnlineTrainer.

Each prompt gets ``num_generations`` completions; each completion's advantage is its reward
against its group's mean (``grpo_loss.py``, equal to TRL's GRPOTrainer); with
``num_iterations`` > 1 the same completions serve several optimizer steps, clipped against the
log-probs they were sampled with.
"""

from __future__ import annotations

import torch

from .grpo_loss import LossSettings, group_advantages, grpo_loss
from .online_trainer import OnlineTrainer, RewardError, pad_rollout  # noqa: F401 (re-exported)
from .policy_logps import completion_logps


class GRPOTrainer(OnlineTrainer):
    """GRPO; ``grpo`` is the stage's parameters (``train/stages/grpo.py``)."""

    def __init__(self, *args, grpo, **kwargs):
        super().__init__(*args, num_generations=grpo.num_generations, passes=grpo.num_iterations,
                         reward_weights=grpo.reward_weights,
                         reward_error_limit=grpo.reward_error_limit,
                         log_completions_steps=grpo.log_completions_steps, **kwargs)
        self.grpo = grpo
        self.settings = LossSettings(grpo.loss_type, grpo.beta, grpo.epsilon,
                                     grpo.epsilon_high or grpo.epsilon, grpo.max_completion_length)

    def make_batch(self, examples) -> dict:
        rollout, per_func, rewards = self.rollout(examples)
        batch = self.sequences(rollout)
        if self.grpo.mask_truncated_completions:
            batch["completion_mask"] *= ~torch.tensor(rollout.truncated).unsqueeze(1)
        batch["advantages"] = group_advantages(rewards, self.num_generations,
                                               self.grpo.scale_rewards)
        if self.grpo.num_iterations > 1:  # the log-probs the completions were sampled with
            with torch.no_grad(), self.compute_loss_context_manager():
                batch["old_logps"] = completion_logps(self.model, self.on_device(batch),
                                                      self.gen.temperature).float()
        if self.grpo.beta != 0.0:
            batch["ref_logps"] = self.reference_logps(batch)
        groups = rewards.view(-1, self.num_generations)
        self.metrics.add(frac_reward_zero_std=float(
            (groups.max(1).values == groups.min(1).values).float().mean()))
        self.record(examples, rollout, per_func, rewards, batch, batch["advantages"])
        return batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logps = completion_logps(model, inputs, self.gen.temperature)
        loss, metrics = grpo_loss(logps, inputs.get("old_logps"), inputs.get("ref_logps"),
                                  inputs["advantages"], inputs["completion_mask"], self.settings)
        self.metrics.add(**metrics)
        return loss
