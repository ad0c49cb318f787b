"""``GRPOTrainer``: the Trainer with a generation step in front of each training step.

Each micro-batch of prompts is expanded into ``num_generations`` completions by the policy
itself (``rollout.py``), scored by the reward functions (``rewards/``), turned into
group-normalized advantages and trained on with the clipped objective (``grpo_loss.py``). The
rest (optimizer, schedule, checkpoints, NaN guard, resume, logging) is the TunesmithTrainer's.

A reward function that fails (raises, wrong length, NaN) skips the step with one line naming it
and the sample; ``reward_error_limit`` skipped steps are allowed, the next failure stops.
"""

from __future__ import annotations

import sys

import torch
from transformers import TrainerCallback

from ..errors import TunesmithError
from .grpo_loss import LossSettings, group_advantages, grpo_loss
from .online_data import RepeatSampler
from .online_log import CompletionLog, StepMetrics, mean_std, plot_rewards
from .policy_logps import completion_logps
from .rewards import RewardBatch, RewardFailure, score_batch
from .trainer import TunesmithTrainer


class RewardError(TunesmithError):
    """Too many steps were skipped for failing reward functions."""


def pad_rollout(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad: int) -> dict:
    """Left-padded prompts + right-padded completions as tensors.

    Returns:
        ``input_ids``/``attention_mask`` (N, P + C) and ``completion_mask`` (N, C).
    """
    width = max(len(p) for p in prompt_ids)
    length = max(1, max(len(c) for c in completion_ids))  # an all-empty batch keeps one masked slot
    rows, masks, cmask = [], [], []
    for p, c in zip(prompt_ids, completion_ids):
        rows.append([pad] * (width - len(p)) + p + c + [pad] * (length - len(c)))
        masks.append([0] * (width - len(p)) + [1] * (len(p) + len(c)) + [0] * (length - len(c)))
        cmask.append([1] * len(c) + [0] * (length - len(c)))
    return {"input_ids": torch.tensor(rows), "attention_mask": torch.tensor(masks),
            "completion_mask": torch.tensor(cmask)}


class _PlotRewards(TrainerCallback):
    def __init__(self, names: list[str]):
        self.names = names

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            plot_rewards(args.output_dir, self.names)


class GRPOTrainer(TunesmithTrainer):
    """GRPO on a TunesmithTrainer.

    Args (besides the Trainer's):
        grpo: the stage parameters (``train/stages/grpo.py``).
        rewards: the RewardFunctions, weighted by ``grpo.reward_weights``.
        sampler: a PolicySampler generating from the training model.
        gen: the GenParams completions are sampled with.
        ref_model: a frozen reference for ``beta`` != 0 when the policy has no adapter to
            switch off (full/freeze); None otherwise.
    """

    def __init__(self, *args, grpo, rewards, sampler, gen, ref_model=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.grpo, self.rewards, self.policy_sampler, self.gen = grpo, rewards, sampler, gen
        self.ref_model = ref_model
        self.weights = torch.tensor(grpo.reward_weights or [1.0] * len(rewards))
        self.settings = LossSettings(grpo.loss_type, grpo.beta, grpo.epsilon,
                                     grpo.epsilon_high or grpo.epsilon, grpo.max_completion_length)
        self.metrics = StepMetrics()
        self.completion_log = CompletionLog(self.args.output_dir, grpo.log_completions_steps)
        self.reward_skips = 0
        self._buffer: dict[tuple, list] = {}  # prompt indices -> [batch, uses] (num_iterations)
        self.loss_is_scaled_for_ga = False  # each micro-batch's loss is its own mean: HF divides
        self.add_callback(_PlotRewards([r.name for r in rewards]))

    # --- batches ---------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        batch = self.args.per_device_train_batch_size
        return RepeatSampler(len(dataset), batch, batch * self.args.gradient_accumulation_steps,
                             self.grpo.num_iterations, self.args.seed)

    def _track_num_input_tokens(self, inputs):
        """Counted in :meth:`_make_batch` (prompt + completion tokens trained on)."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        key = tuple(inputs["indices"])
        entry = self._buffer.get(key)
        if entry is None or entry[1] >= self.grpo.num_iterations:
            try:
                entry = [self._make_batch(inputs["examples"]), 0]
            except RewardFailure as err:
                return self._skip(err)
            self._buffer = {k: v for k, v in self._buffer.items() if v[1] < self.grpo.num_iterations}
            self._buffer[key] = entry
        entry[1] += 1
        return super().training_step(model, dict(entry[0]), num_items_in_batch)

    def _skip(self, err: RewardFailure) -> torch.Tensor:
        self.reward_skips += 1
        step = self.state.global_step + 1
        print(f"warning: step {step} skipped: {err} ({self.reward_skips} skipped so far)",
              file=sys.stderr, flush=True)
        if self.reward_skips > self.grpo.reward_error_limit:
            raise RewardError(f"training stopped at step {step}: {self.reward_skips} steps "
                              f"skipped for failing reward functions (reward_error_limit: "
                              f"{self.grpo.reward_error_limit}); last: {err}")
        return torch.tensor(0.0, device=self.args.device)

    def _make_batch(self, examples) -> dict:
        """Generate, score, and build the tensors one training step needs."""
        g = self.grpo.num_generations
        with self.compute_loss_context_manager():  # generation under training's autocast
            rollout = self.policy_sampler.sample([e.messages for e in examples], g, self.gen)
        scores = score_batch(self.rewards, RewardBatch(
            [e.messages for e in examples for _ in range(g)], rollout.texts,
            rollout.completion_ids, [e.answer for e in examples for _ in range(g)]))
        per_func = torch.tensor(scores, dtype=torch.float32).T  # (N, F)
        rewards = (per_func * self.weights).sum(dim=1)  # (N,)
        batch = pad_rollout(rollout.prompt_ids, rollout.completion_ids,
                            self.policy_sampler.engine.tokenizer.pad_token_id)
        if self.grpo.mask_truncated_completions:
            batch["completion_mask"] *= ~torch.tensor(rollout.truncated).unsqueeze(1)
        batch["advantages"] = group_advantages(rewards, g, self.grpo.scale_rewards)
        batch.update(self._fixed_logps(batch))
        self._record(examples, rollout, per_func, rewards, batch)
        return batch

    @torch.no_grad()
    def _fixed_logps(self, batch: dict) -> dict:
        """Log-probs at generation time (``num_iterations`` > 1) and of the reference (beta)."""
        out = {}
        args = (batch["input_ids"].to(self.args.device), batch["attention_mask"].to(self.args.device),
                batch["completion_mask"].shape[1], self.gen.temperature)
        with self.compute_loss_context_manager():
            if self.grpo.num_iterations > 1:
                out["old_logps"] = completion_logps(self.model, *args).float()
            if self.grpo.beta != 0.0:
                out["ref_logps"] = self._reference_logps(args).float()
        return out

    def _reference_logps(self, args) -> torch.Tensor:
        if self.ref_model is not None:
            return completion_logps(self.ref_model, *args)
        with self.model.disable_adapter():  # the reference is the base: no second copy
            return completion_logps(self.model, *args)

    # --- loss ------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mask = inputs["completion_mask"]
        logps = completion_logps(model, inputs["input_ids"], inputs["attention_mask"],
                                 mask.shape[1], self.gen.temperature)
        loss, metrics = grpo_loss(logps, inputs.get("old_logps"), inputs.get("ref_logps"),
                                  inputs["advantages"], mask, self.settings)
        self.metrics.add(**metrics)
        return loss

    # --- records ---------------------------------------------------------------------------
    def _record(self, examples, rollout, per_func, rewards, batch) -> None:
        lengths = [len(c) for c in rollout.completion_ids]
        self.state.num_input_tokens_seen += int(batch["attention_mask"].sum())
        stats = {}
        for i, func in enumerate(self.rewards):
            stats[f"rewards/{func.name}/mean"], stats[f"rewards/{func.name}/std"] = \
                mean_std(per_func[:, i].tolist())
        stats["reward"], stats["reward_std"] = mean_std(rewards.tolist())
        groups = rewards.view(-1, self.grpo.num_generations)
        stats["frac_reward_zero_std"] = float((groups.max(1).values == groups.min(1).values)
                                              .float().mean())
        stats["completions/mean_length"] = sum(lengths) / len(lengths)
        stats["completions/clipped_ratio"] = sum(rollout.truncated) / len(lengths)
        self.metrics.add(**stats)
        step = self.state.global_step + 1
        if self.completion_log.due(step) and self.is_world_process_zero():
            self.completion_log.write(step, self._completion_rows(examples, rollout, per_func,
                                                                  rewards, batch["advantages"]))

    def _completion_rows(self, examples, rollout, per_func, rewards, advantages) -> list[dict]:
        g = self.grpo.num_generations
        return [{"prompt": examples[i // g].messages[-1]["content"],
                 "completion": rollout.texts[i], "answer": examples[i // g].answer,
                 "rewards": {f.name: round(float(per_func[i, j]), 4)
                             for j, f in enumerate(self.rewards)},
                 "reward": round(float(rewards[i]), 4),
                 "advantage": round(float(advantages[i]), 4)}
                for i in range(len(rollout.texts))]

    def log(self, logs, start_time=None):
        if "loss" in logs:
            logs.update(self.metrics.pop_means())
            logs["reward_skipped_steps"] = self.reward_skips
        super().log(logs, start_time)
