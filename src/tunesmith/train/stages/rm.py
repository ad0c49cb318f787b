"""``stage: rm``: a reward model on chosen/rejected pairs (a scalar value head on the causal LM,
pairwise loss). ``predict`` and ``serve`` of the result return scores; ``export`` keeps the head.
"""

from __future__ import annotations

from ...errors import ConfigError
from . import Stage, register_stage
from ._pref import PAIR_DATA


def _check(cfg) -> None:
    if cfg.data.train_on != "all_assistant":
        raise ConfigError("stage: rm scores each answer after the shared prompt; remove 'train_on'")


def _prepare(cfg, model):
    from ..reward_model import attach_value_head

    return attach_value_head(model)



register_stage(Stage(
    name="rm",
    summary="reward model on chosen/rejected pairs (value head, pairwise loss)",
    **PAIR_DATA,
    passes=True,
    check=_check,
    trainer="reward_trainer:RewardTrainer",
    prepare_model=_prepare,
    methods_note="every method; the value head trains in full under each; prefix/prompt/ptuning "
                 "batches are padded, not packed",
    plots=("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"),
    evaluate="rewards",
))
