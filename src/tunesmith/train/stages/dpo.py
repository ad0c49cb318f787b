"""``stage: dpo``: preference optimisation on chosen/rejected pairs.

``pref_loss``: sigmoid (DPO), ipo, hinge (against a reference), orpo and simpo (reference-free),
with LLaMA-Factory's keys (``pref_beta``, ``pref_ftx``, ``simpo_gamma``,
``dpo_label_smoothing``, ``ref_model``) and TRL's ``precompute_ref_log_probs``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from . import Stage, register_stage, stage_params
from ._pref import METHODS_NOTE, PAIR_DATA, PREF_LOSS_NAMES, RefParams, reference_kwargs

PLOTS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
         "logps/chosen", "logps/rejected")


@dataclass
class DPOParams(RefParams):
    pref_loss: str = "sigmoid"
    simpo_gamma: float = 0.5
    dpo_label_smoothing: float = 0.0

    def check(self) -> None:
        super().check()
        if self.pref_loss not in PREF_LOSS_NAMES:
            from ...config_parse import suggest

            raise ConfigError(f"key 'pref_loss': '{self.pref_loss}' is not one of "
                              f"{', '.join(PREF_LOSS_NAMES)}{suggest(self.pref_loss, PREF_LOSS_NAMES)}")
        if not 0 <= self.dpo_label_smoothing < 0.5:
            raise ConfigError("key 'dpo_label_smoothing': must be in [0, 0.5), got "
                              f"{self.dpo_label_smoothing}")
        if self.dpo_label_smoothing and self.pref_loss not in ("sigmoid", "simpo"):
            raise ConfigError("key 'dpo_label_smoothing': only pref_loss sigmoid and simpo use it "
                              f"(pref_loss is {self.pref_loss})")


def _check(cfg) -> None:
    if cfg.data.train_on != "all_assistant":
        raise ConfigError("stage: dpo labels each answer after the shared prompt; remove 'train_on'")



def _kwargs(cfg, model, tokenizer) -> dict:
    from ..pref_losses import PREF_LOSSES
    from ..pref_trainer import PairObjective

    params = stage_params(cfg)
    loss = PREF_LOSSES.get(params.pref_loss)
    return {"objective": PairObjective(loss, params),
            **reference_kwargs(cfg, model, params, loss.needs_ref)}


register_stage(Stage(
    name="dpo",
    summary="preference optimisation on chosen/rejected pairs (pref_loss: sigmoid, ipo, hinge, "
            "orpo, simpo)",
    **PAIR_DATA,
    passes=True,
    check=_check,
    trainer="pref_trainer:PreferenceTrainer",
    trainer_kwargs=_kwargs,
    plots=PLOTS,
    params=DPOParams,
    methods_note=METHODS_NOTE,
    evaluate="pairs",
))
