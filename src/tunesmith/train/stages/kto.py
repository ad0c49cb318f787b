"""``stage: kto``: Kahneman-Tversky optimisation on answers labelled desirable or undesirable
(LLaMA-Factory's ``kto_tag`` datasets, TRL's ``{prompt, completion, label}``), with the KL term
estimated from mismatched prompt/answer pairs of each batch."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from . import Stage, register_stage, stage_params
from ._pref import METHODS_NOTE, RefParams, packs, reference_kwargs


@dataclass
class KTOParams(RefParams):
    kto_chosen_weight: float = 1.0
    kto_rejected_weight: float = 1.0

    def check(self) -> None:
        super().check()
        for key in ("kto_chosen_weight", "kto_rejected_weight"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"key '{key}': must be positive, got {getattr(self, key)}")


def _check(cfg) -> None:
    if cfg.data.train_on != "all_assistant":
        raise ConfigError("stage: kto labels each answer after its prompt; remove 'train_on'")


def _collator(cfg, tokenizer):
    from ...data.pair_collate import UnpairedCollator

    return UnpairedCollator(tokenizer.pad_token_id, pack=packs(cfg))


def _dataset(examples, cfg=None):
    from ..pref_dataset import UnpairedDataset

    if cfg is None:
        return UnpairedDataset(examples)
    return UnpairedDataset(examples, cfg.train.per_device_train_batch_size, cfg.data.cutoff_len)



def _kwargs(cfg, model, tokenizer) -> dict:
    from ..pref_trainer import KTOObjective

    params = stage_params(cfg)
    return {"objective": KTOObjective(params), **reference_kwargs(cfg, model, params, True)}


register_stage(Stage(
    name="kto",
    summary="KTO on answers labelled desirable/undesirable (kto_tag), with a KL term",
    data_kind="unpaired",
    check=_check,
    collator=_collator,
    dataset=_dataset,
    trainer="pref_trainer:PreferenceTrainer",
    trainer_kwargs=_kwargs,
    plots=("rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen",
           "logps/rejected", "kl"),
    params=KTOParams,
    methods_note=METHODS_NOTE,
    evaluate="pairs",
))
