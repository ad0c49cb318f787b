"""``OnlineTrainer``: what every online-RL stage shares (GRPO, PPO): a Trainer whose steps
generate their own data.

Each micro-batch of prompts is expanded into completions by the policy itself (``rollout.py``)
and scored by the reward functions (``rewards/``); the subclass turns that into the tensors its
loss needs (:meth:`make_batch`) and computes the loss (:meth:`compute_loss`). A batch of
completions serves ``passes`` optimizer steps (GRPO's ``num_iterations``, PPO's ``ppo_epochs``):
the sampler repeats its prompts and the batch is reused. The rest (optimizer, schedule,
checkpoints, NaN guard, resume, logging) is the TunesmithTrainer's.

A reward function that fails (raises, wrong length, NaN) skips the step with one line naming it
and the sample; ``reward_error_limit`` skipped steps are allowed, the next failure stops.
"""

from __future__ import annotations

import sys
import time

import torch
from transformers import TrainerCallback

from ..errors import TunesmithError
from .fast_loss import _base_model
from .online_data import RepeatSampler
from .online_log import CompletionLog, StepMetrics, mean_std, plot_rewards
from .policy_logps import completion_logps
from .rewards import RewardBatch, RewardFailure, score_batch
from .rollout_batch import pad_rollout, rollout_batch  # noqa: F401 (pad_rollout re-exported)
from .trainer import TunesmithTrainer


# Attention kernels that apply a 4-D boolean mask as given (eager adds it as a float bias).
MASK_4D_KERNELS = ("sdpa", "hybrid")


class RewardError(TunesmithError):
    """Too many steps were skipped for failing reward functions."""


class _PlotRewards(TrainerCallback):
    def __init__(self, names: list[str]):
        self.names = names

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            plot_rewards(args.output_dir, self.names)


class OnlineTrainer(TunesmithTrainer):
    """Generation, rewards, batch reuse and records for online RL; subclasses add the loss.

    Args (besides the Trainer's):
        rewards: the RewardFunctions (weighted by ``reward_weights``, default 1 each).
        sampler: a PolicySampler generating from the training model.
        gen: the GenParams completions are sampled with.
        num_generations: completions per prompt.
        passes: optimizer steps each batch of completions serves.
        window: prompts whose batches are repeated together (a multiple of the batch size).
        ref_model: a frozen reference when the policy has no adapter to switch off, else None.
        packing: the ``packing`` key: sequences packed padding-free (true, auto where it pays).
    """

    def __init__(self, *args, rewards, sampler, gen, num_generations: int = 1, passes: int = 1,
                 window: int | None = None, reward_weights=None, reward_error_limit: int = 10,
                 log_completions_steps: int = 10, ref_model=None, packing="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.rewards, self.policy_sampler, self.gen = rewards, sampler, gen
        self.num_generations, self.passes, self.ref_model = num_generations, passes, ref_model
        self.packing = packing
        self.window = window or (self.args.per_device_train_batch_size
                                 * self.args.gradient_accumulation_steps)
        self.weights = torch.tensor(reward_weights or [1.0] * len(rewards))
        self.reward_error_limit = reward_error_limit
        self.metrics = StepMetrics()
        self.completion_log = CompletionLog(self.args.output_dir, log_completions_steps)
        self.reward_skips = 0
        self._buffer: dict[tuple, list] = {}  # prompt indices -> [batch, uses]
        self.loss_is_scaled_for_ga = False  # each micro-batch's loss is its own mean: HF divides
        self.add_callback(_PlotRewards([r.name for r in rewards]))

    # --- batches ---------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return RepeatSampler(len(dataset), self.args.per_device_train_batch_size, self.window,
                             self.passes, self.args.seed)

    def _track_num_input_tokens(self, inputs):
        """Counted in :meth:`record` (prompt + completion tokens trained on)."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        key = tuple(inputs["indices"])
        entry = self._buffer.get(key)
        if entry is None or entry[1] >= self.passes:
            try:
                entry = [self.make_batch(inputs["examples"]), 0]
            except RewardFailure as err:
                return self._skip(err)
            self._buffer = {k: v for k, v in self._buffer.items() if v[1] < self.passes}
            self._buffer[key] = entry
        entry[1] += 1
        return super().training_step(model, dict(entry[0]), num_items_in_batch)

    def _skip(self, err: RewardFailure) -> torch.Tensor:
        self.reward_skips += 1
        step = self.state.global_step + 1
        print(f"warning: step {step} skipped: {err} ({self.reward_skips} skipped so far)",
              file=sys.stderr, flush=True)
        if self.reward_skips > self.reward_error_limit:
            raise RewardError(f"training stopped at step {step}: {self.reward_skips} steps "
                              f"skipped for failing reward functions (reward_error_limit: "
                              f"{self.reward_error_limit}); last: {err}")
        return torch.tensor(0.0, device=self.args.device)

    def rollout(self, examples):
        """Sample ``num_generations`` completions per prompt and score them.

        Returns:
            The Rollout, the scores per function (N, F) and the weighted rewards (N,).
        """
        g = self.num_generations
        start = time.perf_counter()
        with self.compute_loss_context_manager():  # generation under training's autocast
            rollout = self.policy_sampler.sample([e.messages for e in examples], g, self.gen)
        self.metrics.add(**{"time/generation_s": time.perf_counter() - start})
        scores = score_batch(self.rewards, RewardBatch(
            [e.messages for e in examples for _ in range(g)], rollout.texts,
            rollout.completion_ids, [e.answer for e in examples for _ in range(g)]))
        per_func = torch.tensor(scores, dtype=torch.float32).T  # (N, F)
        return rollout, per_func, (per_func * self.weights).sum(dim=1)

    def sequences(self, rollout) -> dict:
        """The rollout's prompt + completion sequences as a batch: each prompt once for all its
        completions where the attention kernel takes a 4-D mask, else packed or padded."""
        kernel = getattr(_base_model(self.model).config, "_attn_implementation", None)
        group = self.num_generations if kernel in MASK_4D_KERNELS else 1
        return rollout_batch(rollout.prompt_ids, rollout.completion_ids,
                             self.policy_sampler.engine.tokenizer.pad_token_id, self.packing,
                             group)

    def on_device(self, batch: dict) -> dict:
        return {k: v.to(self.args.device) for k, v in batch.items()}

    @torch.no_grad()
    def reference_logps(self, batch: dict) -> torch.Tensor:
        """Log-probs of the reference: the base with the adapter off (no second copy), or the
        frozen copy of a policy without an adapter."""
        batch = self.on_device(batch)
        with self.compute_loss_context_manager():
            if self.ref_model is not None:
                return completion_logps(self.ref_model, batch, self.gen.temperature).float()
            with self.model.disable_adapter():
                return completion_logps(self.model, batch, self.gen.temperature).float()

    def make_batch(self, examples) -> dict:
        """Generate, score, and build the tensors one training step needs (subclasses)."""
        raise NotImplementedError

    # --- records ---------------------------------------------------------------------------
    def record(self, examples, rollout, per_func, rewards, advantages) -> None:
        """Per-step reward/length metrics and (every N steps) the completions."""
        lengths = [len(c) for c in rollout.completion_ids]
        self.state.num_input_tokens_seen += sum(map(len, rollout.prompt_ids)) + sum(lengths)
        stats = {}
        for i, func in enumerate(self.rewards):
            stats[f"rewards/{func.name}/mean"], stats[f"rewards/{func.name}/std"] = \
                mean_std(per_func[:, i].tolist())
        stats["reward"], stats["reward_std"] = mean_std(rewards.tolist())
        stats["completions/mean_length"] = sum(lengths) / len(lengths)
        stats["completions/clipped_ratio"] = sum(rollout.truncated) / len(lengths)
        self.metrics.add(**stats)
        step = self.state.global_step + 1
        if self.completion_log.due(step) and self.is_world_process_zero():
            self.completion_log.write(step, self._completion_rows(examples, rollout, per_func,
                                                                  rewards, advantages))

    def _completion_rows(self, examples, rollout, per_func, rewards, advantages) -> list[dict]:
        g = self.num_generations
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
