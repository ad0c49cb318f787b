"""PreferenceTrainer: DPO-family and KTO losses on the Trainer, with the reference kept cheap.

The reference log-probs come, in this order of preference, from: values precomputed once
before training (``precompute_ref_log_probs``: one no-grad pass, then no reference at all), the
same model with its adapter switched off (adapter methods: no second copy in memory), or a
frozen reference model (full/freeze/bitfit: a copy of the starting model, or ``ref_model``).
Reference-free losses (ORPO, SimPO) skip it. Metrics are gathered per micro-batch and averaged
into each log line, as TRL does.

A pair batch may come in passes of whole pairs (``micro_batch_tokens``; the collator splits it,
``data/pair_collate.py``): each pass's loss and metrics count with its share of the batch's pairs,
so the gradients and the logged values are the whole batch's, with one pass's activations live.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

import torch

from .pref_logps import sequence_logps
from .pref_losses import PrefLoss, kto_loss, pair_loss
from .trainer import TunesmithTrainer


def _kl_batch(inputs: dict) -> dict:
    return {k[3:]: v for k, v in inputs.items() if k.startswith("kl_")}


class PairObjective:
    """DPO-family losses on a batch of pairs (``pref_loss``)."""

    def __init__(self, loss: PrefLoss, params):
        self.loss, self.params = loss, params
        self.needs_ref = loss.needs_ref

    def __call__(self, trainer, model, inputs):
        policy, counts = sequence_logps(model, inputs)
        ref = None
        if self.needs_ref:
            ref = inputs["ref_logps"].to(policy) if "ref_logps" in inputs else \
                trainer.reference_logps(inputs)
        return pair_loss(self.loss, policy, ref, counts, self.params)

    def reference_items(self, trainer, batch) -> list[tuple[float, float]]:
        """Per-pair (chosen, rejected) reference log-probs of one collated batch."""
        chosen, rejected = trainer.reference_logps(batch).chunk(2)
        return list(zip(chosen.tolist(), rejected.tolist()))


class KTOObjective:
    """KTO on a batch of unpaired answers with their KL batch."""

    needs_ref = True

    def __init__(self, params):
        self.params = params

    def __call__(self, trainer, model, inputs):
        policy, counts = sequence_logps(model, inputs)
        with torch.no_grad():
            kl_policy = sequence_logps(model, _kl_batch(inputs))[0]
        if "ref_logps" in inputs:
            ref, kl_ref = inputs["ref_logps"].to(policy), inputs["ref_kl_logps"].to(policy)
        else:
            ref, kl_ref = trainer.reference_logps(inputs), trainer.reference_logps(_kl_batch(inputs))
        return kto_loss(policy, ref, kl_policy, kl_ref, inputs["desirable"], counts, self.params)

    def reference_items(self, trainer, batch) -> list[tuple[float, float]]:
        ref, kl_ref = trainer.reference_logps(batch), trainer.reference_logps(_kl_batch(batch))
        return list(zip(ref.tolist(), kl_ref.tolist()))


class PreferenceTrainer(TunesmithTrainer):
    """The Trainer for ``pairs``/``unpaired`` stages.

    Args:
        objective: a :class:`PairObjective` or :class:`KTOObjective`.
        ref_model: a frozen reference model, or None (adapter toggle, precomputed, or none).
        precompute_ref: compute the reference log-probs of every item once, before training.
    """

    def __init__(self, *args, objective, ref_model=None, precompute_ref: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.objective, self.ref_model = objective, ref_model
        self.model_accepts_loss_kwargs = False  # our loss is a per-batch mean: divide by accumulation
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        if precompute_ref and objective.needs_ref:
            for dataset in (self.train_dataset, self.eval_dataset):
                if dataset is not None:
                    self.precompute_reference(dataset)
            self.ref_model = None  # never needed again: free it

    # --- reference -------------------------------------------------------------------------
    @contextmanager
    def _reference(self):
        """The reference model: ``ref_model``, else this model with its adapters disabled, else
        this model as it is (only before training: precomputation)."""
        model = self.accelerator.unwrap_model(self.model)
        if self.ref_model is not None:
            yield self.ref_model
        elif hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                yield model
        else:
            yield model

    def reference_logps(self, batch: dict) -> torch.Tensor:
        """(n_seqs,) reference log-probs of a batch's answers (no gradient)."""
        with torch.no_grad(), self._reference() as ref:
            return sequence_logps(ref, batch)[0].detach()

    def set_pass_tokens(self, tokens: int | None) -> None:
        """Pair batches are split by the collator (whole pairs per pass); not under DeepSpeed,
        whose engine counts backward calls as accumulation steps."""
        from accelerate.utils import DistributedType

        if self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            tokens = None
        super().set_pass_tokens(tokens)
        if hasattr(self.data_collator, "pass_tokens"):
            self.data_collator.pass_tokens = tokens

    def split_passes(self, inputs, num_items_in_batch) -> list:
        return inputs["passes"] if "passes" in inputs else [inputs]

    def precompute_reference(self, dataset) -> None:
        """One pass in dataset order; the values stay with their items (``dataset.ref``)."""
        from torch.utils.data import DataLoader

        loader = DataLoader(dataset, batch_size=self.args.per_device_eval_batch_size,
                            collate_fn=self.data_collator, shuffle=False)
        items = []
        was_training = self.model.training
        self.model.eval()
        with self.autocast_smart_context_manager():
            for batch in loader:
                for part in batch.get("passes", [batch]):
                    items += self.objective.reference_items(self, self._prepare_inputs(part))
        self.model.train(was_training)
        dataset.ref = items

    # --- loss and metrics ------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, metrics = self.objective(self, model, inputs)
        weight = float(inputs["pass_weight"]) if "pass_weight" in inputs else 1.0
        mode = "train" if model.training else "eval"
        for key, value in metrics.items():
            self._metrics[mode][key].append((value, weight))
        if weight != 1.0:
            loss = loss * weight
        loss = self.inject_test_nan(model, loss)
        return (loss, None) if return_outputs else loss

    def _track_num_input_tokens(self, inputs):
        """Tokens fed, without padding (a shared prompt once): the collator counts them."""
        if self.args.include_num_input_tokens_seen == "no" or "n_tokens" not in inputs:
            return super()._track_num_input_tokens(inputs)
        count = torch.as_tensor(inputs["n_tokens"], device=self.args.device, dtype=torch.int64)
        self.state.num_input_tokens_seen += self.accelerator.gather(count).sum().item()

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        loss = None
        for part in inputs.get("passes", [inputs]):
            part = self._prepare_inputs(part)
            with torch.no_grad(), self.compute_loss_context_manager():
                part_loss = self.compute_loss(model, part).detach()
            loss = part_loss if loss is None else loss + part_loss
        return loss, None, None

    def log(self, logs, start_time=None):
        mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        prefix = "eval_" if mode == "eval" else ""
        for key, values in self._metrics[mode].items():
            if values:  # (value, share of its batch) per pass
                logs[f"{prefix}{key}"] = sum(v * w for v, w in values) / sum(w for _, w in values)
        self._metrics[mode].clear()
        super().log(logs, start_time)
