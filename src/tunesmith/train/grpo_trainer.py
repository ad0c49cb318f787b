"""``GRPOTrainer``: group-relative advantages and the clipped objective on an OnlineTrainer.

Each prompt gets ``num_generations`` completions; each completion's advantage is its reward
against its group's mean (``grpo_loss.py``, equal to TRL's GRPOTrainer); with
``num_iterations`` > 1 the same completions serve several optimizer steps, clipped against the
log-probs they were sampled with.

With ``beta`` 0 (the default, as TRL's), a group whose completions all scored the same has
advantage 0 on every row: it adds exactly nothing to the loss or the gradients, so its forward
and backward passes are skipped (``grpo_loss.live_groups``) and the loss keeps the whole batch's
normalizer. Early in training, when most groups score alike, that is most of a step's compute.
"""

from __future__ import annotations

import torch

from .grpo_loss import LossSettings, Totals, group_advantages, grpo_loss, live_groups
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
        advantages = group_advantages(rewards, self.num_generations, self.grpo.scale_rewards)
        self.record(examples, rollout, per_func, rewards, advantages)
        batch = self.live_batch(rollout, advantages)
        if batch["advantages"].numel() == 0:
            return batch
        if self.grpo.num_iterations > 1:  # the log-probs the completions were sampled with
            with torch.no_grad(), self.compute_loss_context_manager():
                batch["old_logps"] = completion_logps(self.model, self.on_device(batch),
                                                      self.gen.temperature).float()
        if self.grpo.beta != 0.0:
            batch["ref_logps"] = self.reference_logps(batch)
        return batch

    def live_batch(self, rollout, advantages: torch.Tensor) -> dict:
        """The batch of the groups whose rows have a gradient, with the whole batch's counts."""
        live = live_groups(advantages, self.num_generations, self.grpo.beta)
        if not live and self.args.world_size > 1:  # every rank runs its forward (DDP, FSDP)
            live = list(range(self.num_generations))
        masked = self.grpo.mask_truncated_completions
        tokens = sum(len(c) for c, cut in zip(rollout.completion_ids, rollout.truncated)
                     if not (masked and cut))
        self.metrics.add(frac_rows_skipped=1.0 - len(live) / len(advantages))
        batch = {"advantages": advantages[live], "total_rows": torch.tensor(len(advantages)),
                 "total_tokens": torch.tensor(float(tokens))}
        if live:
            part = rollout.select(live) if len(live) < len(advantages) else rollout
            batch.update(self.sequences(part))
            if masked:
                batch["completion_mask"] *= ~torch.tensor(part.truncated).unsqueeze(1)
        return batch

    def record(self, examples, rollout, per_func, rewards, advantages) -> None:
        groups = rewards.view(-1, self.num_generations)
        self.metrics.add(frac_reward_zero_std=float(
            (groups.max(1).values == groups.min(1).values).float().mean()))
        super().record(examples, rollout, per_func, rewards, advantages)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if inputs["advantages"].numel() == 0:  # every group scored alike: a zero gradient
            self.metrics.add(**{k: 0.0 for k in CLIP_METRICS})
            return sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
        totals = Totals(int(inputs["total_rows"]), float(inputs["total_tokens"]))
        logps = completion_logps(model, inputs, self.gen.temperature)
        loss, metrics = grpo_loss(logps, inputs.get("old_logps"), inputs.get("ref_logps"),
                                  inputs["advantages"], inputs["completion_mask"], self.settings,
                                  totals)
        self.metrics.add(**metrics)
        return loss


CLIP_METRICS = ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean")
