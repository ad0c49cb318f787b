"""``TunesmithTrainer``: the HF Trainer, one level deep, with three guarantees added.

1. Checkpoints are atomic: ``_save_checkpoint`` writes into a staging dir, adds the completion
   marker (with the run fingerprint) and renames it into place (``checkpoint.py``).
2. Every optimizer step is checked for a non-finite loss or gradient norm before the update
   (not only at logging steps): ``nan_policy: stop`` raises naming the step; ``skip`` drops the
   update and counts it.
3. Nothing non-finite is ever saved (checked before every checkpoint and the final save).

And one speed path: a batch larger than ``micro_batch_tokens`` runs through the model in passes
of whole rows, with the same gradients (the activations of one pass are live at a time).

Fault injection for the fault tests (NaN at a step, a rank killed, a slow checkpoint write) is
read from ``tunesmith.faults``.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate.utils import DistributedType
from transformers import Trainer
from transformers.trainer_utils import rotate_checkpoints

from .. import faults
from ..errors import ConfigError, TunesmithError
from .checkpoint import (disk_full_error, is_disk_full, publish, staging_root, write_marker)


class NonFiniteLoss(TunesmithError):
    """Training produced NaN/inf (``nan_policy: stop``)."""


def _all_ranks_max(value: int) -> int:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    flag = torch.tensor([value], dtype=torch.long)
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def non_finite_params(model) -> list[str]:
    """Names of trainable parameters holding NaN/inf (empty when all are finite)."""
    return [n for n, p in model.named_parameters()
            if p.requires_grad and not torch.isfinite(p.detach()).all()]


class TunesmithTrainer(Trainer):
    """Trainer with atomic checkpoints, a per-step NaN guard and a run fingerprint."""

    def __init__(self, *args, nan_policy: str = "stop", fingerprint: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.nan_policy = nan_policy
        self.fingerprint = fingerprint
        self.skipped_steps = 0
        self._bad_loss_step: int | None = None
        self._staging: Path | None = None
        self._nan_at = faults.nan_at_step()

    def create_accelerator_and_postprocess(self) -> None:
        """FSDP on CPU (gloo): see ``fsdp.py`` (accelerate drops the plugin on CPU)."""
        if self.args.fsdp_plugin_args is None or not self.args.use_cpu:
            return super().create_accelerator_and_postprocess()
        from .fsdp import fsdp_on_cpu

        with fsdp_on_cpu():
            return super().create_accelerator_and_postprocess()

    def autocast_smart_context_manager(self, cache_enabled: bool | None = True):
        """The run's mixed precision around the loss. The Trainer relies on accelerate wrapping
        ``model.forward``; losses that call the decoder directly (preference log-probs, GRPO,
        the reward head) would otherwise run bf16 weights against fp32 adapters outside autocast."""
        if self.args.bf16 or self.args.fp16:
            return self.accelerator.autocast()
        return super().autocast_smart_context_manager(cache_enabled)

    def _track_num_input_tokens(self, inputs):
        """A packed batch (position ids, no attention mask) holds no padding: every id is a real
        token. (The Trainer, finding no mask and no tokenizer, would warn on every such batch.)"""
        if (self.args.include_num_input_tokens_seen == "no" or "attention_mask" in inputs
                or "input_ids" not in inputs):
            return super()._track_num_input_tokens(inputs)
        count = torch.as_tensor(inputs["input_ids"].numel(), device=self.args.device,
                                dtype=torch.int64)
        self.state.num_input_tokens_seen += self.accelerator.gather(count).sum().item()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """A sharded FSDP model is gathered and saved whole (fsdp.py): in the run folder, and in
        checkpoints when it is an adapter (small); else the Trainer's save."""
        from .fsdp import save_full

        adapter = hasattr(self.model, "peft_config")
        if (_internal_call and not adapter) or not save_full(self, output_dir or self.args.output_dir):
            super().save_model(output_dir, _internal_call)

    # (model, args) -> optimizer, set by build_trainer for LoRA+ (train/optimizers.py)
    optimizer_factory = None

    def create_optimizer(self, *args, **kwargs):
        """An optimizer whose package is missing -> one line naming it (not a traceback)."""
        if self.optimizer is None and self.optimizer_factory is not None:
            self.optimizer = self.optimizer_factory(self.model, self.args)
        try:
            return super().create_optimizer(*args, **kwargs)
        except ImportError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(f"key 'optim': '{self.args.optim}' cannot be built: {first}") from None

    # --- per-step NaN guard ---------------------------------------------------------------
    def compute_loss(self, model, inputs, *args, **kwargs):
        out = super().compute_loss(model, inputs, *args, **kwargs)
        if isinstance(out, tuple):
            return (self.inject_test_nan(model, out[0]), *out[1:])
        return self.inject_test_nan(model, out)

    def inject_test_nan(self, model, loss):
        """Fault injection (``faults.nan_at_step``): that step's loss becomes NaN (stages with
        their own ``compute_loss`` call this too)."""
        if self._nan_at and self.state.global_step + 1 == self._nan_at and model.training:
            return loss * float("nan")
        return loss

    # --- passes: a batch fed through the model a few rows at a time -------------------------
    # at most this many tokens per forward/backward pass (``micro_batch_tokens``, set by the run
    # for stages whose batches are rows of tokens; None: the whole batch in one pass)
    pass_tokens: int | None = None

    def set_pass_tokens(self, tokens: int | None) -> None:
        """Run batches in passes of at most ``tokens`` tokens (None or 0: one pass)."""
        self.pass_tokens = tokens or None

    def split_passes(self, inputs, num_items_in_batch) -> list:
        """The batch as passes of whole rows (bins) of at most ``pass_tokens`` tokens each, or
        ``[inputs]`` when it fits in one or cannot be split exactly: every pass's loss is its
        labelled-token sum over the whole batch's count, so the summed gradients are the whole
        batch's (that needs the count, ``num_items_in_batch``, and a loss that takes it)."""
        ids = inputs.get("input_ids") if isinstance(inputs, dict) else None
        if (not self.pass_tokens or num_items_in_batch is None or ids is None
                or not self.model_accepts_loss_kwargs or ids.dim() != 2
                or self.accelerator.distributed_type == DistributedType.DEEPSPEED):
            return [inputs]
        rows, width = ids.shape
        if rows < 2 or rows * width <= self.pass_tokens or not all(
                torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == rows for v in inputs.values()):
            return [inputs]
        per = max(1, self.pass_tokens // width)
        return [{k: v[i:i + per] for k, v in inputs.items()} for i in range(0, rows, per)]

    def training_step(self, model, inputs, num_items_in_batch=None):
        faults.die_if_due(self.state.global_step + 1)
        passes = self.split_passes(inputs, num_items_in_batch)
        loss = None
        for i, part in enumerate(passes):
            # gradients are synchronised across processes once, in the last pass
            last = i == len(passes) - 1
            with nullcontext() if last else self.accelerator.no_sync(model):
                part_loss = super().training_step(model, part, num_items_in_batch)
            loss = part_loss if loss is None else loss + part_loss
        if not torch.isfinite(loss).all():
            self._bad_loss_step = self.state.global_step + 1
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        """Runs once per optimizer step, before ``optimizer.step()``: the place to refuse it."""
        grad_norm = super()._get_grad_norm(model, grad_norm)
        step = self.state.global_step + 1
        bad_loss = _all_ranks_max(int(self._bad_loss_step == step))
        norm = float(grad_norm) if grad_norm is not None else 0.0
        if bad_loss or not math.isfinite(norm):
            self._non_finite(model, step, "loss" if bad_loss else "gradient norm")
        return grad_norm

    def _non_finite(self, model, step: int, what: str) -> None:
        if self.nan_policy == "skip":
            model.zero_grad(set_to_none=True)  # optimizers skip params without grad: no update
            self.skipped_steps += 1
            print(f"warning: non-finite {what} at step {step}: update skipped "
                  f"({self.skipped_steps} skipped so far)", file=sys.stderr, flush=True)
            return
        model.zero_grad(set_to_none=True)
        raise NonFiniteLoss(
            f"non-finite {what} (NaN/inf) at step {step}; training stopped before applying it. "
            f"Likely cause: learning rate {self.args.learning_rate:g} too high (or fp16 "
            "overflow, or rows with extreme lengths); lower learning_rate, set max_grad_norm, or "
            "nan_policy: skip. No checkpoint of this state was saved")

    def log(self, logs, start_time=None):
        if self.nan_policy == "skip" and "loss" in logs:
            logs["skipped_steps"] = self.skipped_steps
        super().log(logs, start_time)

    # --- atomic checkpoints ---------------------------------------------------------------
    def _get_output_dir(self, trial):
        if self._staging is not None:
            return str(self._staging)
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        run_dir = Path(super()._get_output_dir(trial))
        step = self.state.global_step
        final = run_dir / f"checkpoint-{step}"
        bad = non_finite_params(self.model)
        if bad:
            raise NonFiniteLoss(f"refusing to save checkpoint-{step}: parameter {bad[0]} is "
                                "not finite (NaN/inf)")
        self._staging = staging_root(run_dir, step)
        try:
            super()._save_checkpoint(model, trial)
            _barrier()
            if self.args.should_save:
                self._finish_checkpoint(self._staging / final.name, final, run_dir)
            _barrier()
        except Exception as exc:
            if self.args.should_save:
                shutil.rmtree(self._staging, ignore_errors=True)
            if is_disk_full(exc, run_dir):
                raise disk_full_error(final, run_dir) from None
            raise
        finally:
            self._staging = None

    def _finish_checkpoint(self, staged: Path, final: Path, run_dir: Path) -> None:
        best = self.state.best_model_checkpoint
        if best and Path(best).parent == self._staging:
            self.state.best_model_checkpoint = str(run_dir / Path(best).name)
            self.state.save_to_json(str(staged / "trainer_state.json"))
        pause = faults.slow_save_seconds(self.state.global_step)
        if pause:
            faults.announce(f"writing {final.name}")
            time.sleep(pause)
        write_marker(staged, self.state.global_step, self.fingerprint)
        publish(staged, final)
        shutil.rmtree(self._staging, ignore_errors=True)
        rotate_checkpoints(str(run_dir), self.args.save_total_limit,
                           self.state.best_model_checkpoint, use_mtime=False)
