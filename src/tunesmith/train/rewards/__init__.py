"""Reward functions for online RL (``reward_funcs``, ``reward_weights``, ``reward_model``).

A reward function scores a batch of completions, one float each. Three kinds:

* built-ins, registered in :data:`REWARDS` (``builtin.py``): ``format_think``,
  ``exact_answer``, ``regex``, ``contains``, ``length_penalty``;
* ``module:function``: a Python function of the user's, imported in the training process only
  when a config names it (TRL's signature: ``fn(prompts=, completions=, completion_ids=,
  answer=, **kwargs) -> list[float]``; completions are strings, prompts message lists);
* ``reward_model: <dir>``: the scalar head of a model trained with ``stage: rm`` (``model.py``).

Bad output is caught per step (:func:`score_batch`): a function that raises, returns the wrong
number of scores, or a NaN/inf/non-number, is named with the first sample it failed on, and the
caller skips the step.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Callable

from ...errors import ConfigError, TunesmithError
from ...registry import Registry


@dataclass
class RewardBatch:
    """What reward functions see: one entry per completion (prompts repeat per generation)."""

    prompts: list[list[dict]]
    completions: list[str]
    completion_ids: list[list[int]]
    answers: list[str | None]


@dataclass(frozen=True)
class Builtin:
    factory: Callable  # (stage params) -> (RewardBatch) -> list[float]
    summary: str


@dataclass
class RewardFunction:
    name: str
    score: Callable[[RewardBatch], list]


class RewardFailure(TunesmithError):
    """A reward function failed on a step's batch (the step is skipped and counted)."""


REWARDS: Registry[Builtin] = Registry("reward function", key="reward_funcs")


def register_reward(name: str, summary: str):
    """Decorator registering a built-in reward factory under ``name``."""
    return REWARDS.register(name, lambda factory: Builtin(factory, summary))


def _builtins() -> None:
    from . import builtin  # noqa: F401  (registers on import)


def import_user_function(spec: str) -> Callable:
    """The function named by ``module:function`` (imported now, in this process).

    Raises:
        ConfigError: the module does not import or has no such callable (one line).
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"key 'reward_funcs': '{spec}' is neither a built-in nor module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's file
        raise ConfigError(f"key 'reward_funcs': cannot import module '{module_name}' for "
                          f"'{spec}': {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"key 'reward_funcs': module '{module_name}' has no function '{attr}'")
    return fn


def _user_reward(spec: str) -> RewardFunction:
    fn = import_user_function(spec)

    def score(batch: RewardBatch) -> list:
        return fn(prompts=batch.prompts, completions=batch.completions,
                  completion_ids=batch.completion_ids, answer=batch.answers)

    return RewardFunction(spec, score)


def check_reward_names(names: list[str]) -> None:
    """Refuse unknown built-ins and ``module:function`` entries that do not import (before any
    model loads)."""
    _builtins()
    for name in names:
        if ":" in name:
            import_user_function(name)
        else:
            REWARDS.get(name)


def build_rewards(params, scorer_factory: Callable | None = None) -> list[RewardFunction]:
    """The configured reward functions, in order (the reward model last).

    Args:
        params: the stage parameters (``reward_funcs``, ``reward_model`` and the built-ins' keys).
        scorer_factory: ``(path) -> RewardFunction`` for ``reward_model`` (loads the model).
    """
    _builtins()
    funcs = []
    for name in params.reward_funcs:
        if ":" in name:
            funcs.append(_user_reward(name))
        else:
            funcs.append(RewardFunction(name, REWARDS.get(name).factory(params)))
    if params.reward_model:
        funcs.append(scorer_factory(params.reward_model))
    return funcs


def _sample(batch: RewardBatch, i: int) -> str:
    prompt = batch.prompts[i][-1]["content"] if batch.prompts[i] else ""
    return f"sample {i} (prompt {prompt[:40]!r}, completion {batch.completions[i][:40]!r})"


def _subset(batch: RewardBatch, i: int) -> RewardBatch:
    return RewardBatch(batch.prompts[i:i + 1], batch.completions[i:i + 1],
                       batch.completion_ids[i:i + 1], batch.answers[i:i + 1])


def _failing_sample(func: RewardFunction, batch: RewardBatch) -> str:
    """The first sample the function raises on alone (or 'the batch' when none does alone)."""
    for i in range(len(batch.completions)):
        try:
            func.score(_subset(batch, i))
        except Exception:  # noqa: BLE001 - locating the user's failure
            return _sample(batch, i)
    return "the batch"


def _checked(func: RewardFunction, batch: RewardBatch, values) -> list[float]:
    n = len(batch.completions)
    try:
        values = list(values)
    except TypeError:
        raise RewardFailure(f"reward function '{func.name}' returned {type(values).__name__}, "
                            f"expected a list of {n} numbers") from None
    if len(values) != n:
        raise RewardFailure(f"reward function '{func.name}' returned {len(values)} scores for "
                            f"{n} completions")
    out = []
    for i, v in enumerate(values):
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = math.nan
        if not math.isfinite(v):
            raise RewardFailure(f"reward function '{func.name}' returned {values[i]!r} for "
                                f"{_sample(batch, i)}")
        out.append(v)
    return out


def score_batch(funcs: list[RewardFunction], batch: RewardBatch) -> list[list[float]]:
    """Scores per function (``[F][N]``), every value checked.

    Raises:
        RewardFailure: one line naming the function, what went wrong and the sample.
    """
    scores = []
    for func in funcs:
        try:
            values = func.score(batch)
        except Exception as exc:  # noqa: BLE001 - a user's function: report, the step is skipped
            raise RewardFailure(f"reward function '{func.name}' raised {type(exc).__name__}: "
                                f"{exc} on {_failing_sample(func, batch)}") from None
        scores.append(_checked(func, batch, values))
    return scores
