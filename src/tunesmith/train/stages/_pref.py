"""What the preference stages (dpo, kto, rm) share: their config keys, collators and the
reference model. Not a stage itself (modules starting with ``_`` are not discovered)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import ConfigError

if TYPE_CHECKING:
    from ...config import RunConfig


PREF_LOSS_NAMES = ("sigmoid", "ipo", "hinge", "orpo", "simpo")
# Methods whose trainable part is virtual tokens in front of every row: sequences cannot share a
# row, so their preference batches are padded, not packed.
VIRTUAL_TOKEN_METHODS = ("prefix", "prompt", "ptuning")
METHODS_NOTE = ("every method; prefix/prompt/ptuning batches are padded, not packed; AdaLoRA "
                "trains without its orthogonality term; full/freeze/bitfit keep a frozen copy "
                "as the reference unless precompute_ref_log_probs")


@dataclass
class RefParams:
    """Keys of every stage that compares against a reference model."""

    pref_beta: float = 0.1
    pref_ftx: float = 0.0
    ref_model: str | None = None
    precompute_ref_log_probs: bool = False

    def check(self) -> None:
        if self.pref_beta <= 0:
            raise ConfigError(f"key 'pref_beta': must be positive, got {self.pref_beta}")
        if self.pref_ftx < 0:
            raise ConfigError(f"key 'pref_ftx': must be >= 0, got {self.pref_ftx}")


def packs(cfg: RunConfig) -> bool:
    return cfg.method.method not in VIRTUAL_TOKEN_METHODS


def pair_collator(cfg: RunConfig, tokenizer):
    from ...data.pair_collate import PairCollator

    return PairCollator(tokenizer.pad_token_id, pack=packs(cfg))


def pair_dataset(examples, cfg: RunConfig | None = None):
    from ..pref_dataset import PairDataset

    return PairDataset(examples)


def frozen_copy(model):
    """A frozen copy of the starting model (full/freeze/bitfit references). The copy's
    instance-level ``forward`` (the fast-loss hook) is dropped: it would call the original."""
    ref = copy.deepcopy(model)
    ref.__dict__.pop("forward", None)
    ref.requires_grad_(False)
    return ref.eval()


def load_reference(cfg: RunConfig, name: str):
    """``ref_model``: another checkpoint, loaded frozen in the training dtype."""
    from dataclasses import replace

    from ...model.load import load_model, resolve_model_path
    from ..arguments import training_dtype

    model_cfg = replace(cfg.model, model_name_or_path=name, quantization_bit=None)
    ref = load_model(model_cfg, dtype=training_dtype(cfg),
                     path=resolve_model_path(name, model_cfg=model_cfg))
    ref.requires_grad_(False)
    return ref.eval()


def reference_kwargs(cfg: RunConfig, model, params, needs_ref: bool) -> dict:
    """The PreferenceTrainer's reference arguments: precomputed, adapter toggle (no copy), a
    copy of the starting model (full/freeze/bitfit) or ``ref_model``."""
    if not needs_ref:
        return {}
    ref = None
    if params.ref_model:
        ref = load_reference(cfg, params.ref_model)
    elif not params.precompute_ref_log_probs and not hasattr(model, "disable_adapter"):
        ref = frozen_copy(model)
    return {"ref_model": ref, "precompute_ref": params.precompute_ref_log_probs}


# The data half of a stage on pairs: ``Stage(name=..., **PAIR_DATA, ...)``.
PAIR_DATA = {"data_kind": "pairs", "collator": pair_collator, "dataset": pair_dataset}
