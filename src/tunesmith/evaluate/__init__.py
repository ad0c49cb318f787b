"""Evaluation: text metrics, batched predict, loss and perplexity, preference accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


def _loss(cfg) -> dict:
    from .loss import run_eval

    return run_eval(cfg)


def _pairs(cfg) -> dict:
    from .preference import run_pref_eval

    return run_pref_eval(cfg)


def _rewards(cfg) -> dict:
    from .preference import run_pref_eval

    return run_pref_eval(cfg, reward=True)


def _generate(cfg, progress: bool = True) -> dict:
    from .predict import run_predict

    return run_predict(cfg, progress=progress)


def _score(cfg, progress: bool = True) -> dict:
    from .preference import run_reward_predict

    return run_reward_predict(cfg, progress=progress)


# What ``tunesmith eval`` and ``predict`` compute, named by each stage (``Stage.evaluate``):
# name -> (eval, predict).
EVALUATORS = {"loss": (_loss, _generate), "pairs": (_pairs, _generate),
              "rewards": (_rewards, _score)}


def _entry(cfg):
    from ..train.stages import get_stage

    return EVALUATORS[get_stage(cfg.method.stage).evaluate]


def run_evaluator(cfg: RunConfig) -> dict:
    """The configured stage's evaluation (loss/perplexity, pair accuracy or reward accuracy)."""
    return _entry(cfg)[0](cfg)


def run_predictor(cfg: RunConfig, progress: bool = True) -> dict:
    """The configured stage's predict: generation scored against references, or a reward
    model's scores of each pair."""
    return _entry(cfg)[1](cfg, progress)
