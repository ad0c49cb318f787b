"""``stage: grpo``: online RL with group-relative advantages (DeepSeek's GRPO, TRL's names).

Prompts come from any chat/alpaca dataset (data kind ``prompts``); each step samples
``num_generations`` completions per prompt from the policy (``infer_backend``: the chat engine
around the training model, or vLLM on a GPU), scores them with the reward functions and trains
with the clipped objective (``train/grpo_trainer.py``). The reference for ``beta`` is the base
with the adapter switched off (adapter methods) or a frozen copy (full/freeze).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import ConfigError
from . import Stage, register_stage, stage_params, stage_template
from ._online import PROMPT_DATA, check_online, reference_model


@dataclass
class GRPOParams:
    num_generations: int = 4
    max_completion_length: int = 256
    beta: float = 0.0
    epsilon: float = 0.2
    epsilon_high: float | None = None
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    num_iterations: int = 1
    mask_truncated_completions: bool = False
    reward_funcs: list[str] = field(default_factory=list)
    reward_weights: list[float] | None = None
    reward_model: str | None = None
    reward_regex: str | None = None
    reward_contains: list[str] = field(default_factory=list)
    length_penalty_cache: int | None = None
    reward_error_limit: int = 10
    log_completions_steps: int = 10

    def check(self) -> None:
        from ..grpo_loss import LOSS_TYPES, SCALE_REWARDS

        self.reward_funcs = [f.strip() for f in self.reward_funcs if f.strip()]
        if self.num_generations < 2:
            raise ConfigError(f"key 'num_generations': must be >= 2 (advantages compare "
                              f"completions of one prompt), got {self.num_generations}")
        for key in ("max_completion_length", "num_iterations"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"key '{key}': must be a positive integer, got "
                                  f"{getattr(self, key)}")
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"key 'loss_type': '{self.loss_type}' is not one of "
                              f"{', '.join(LOSS_TYPES)}")
        if self.scale_rewards not in SCALE_REWARDS:
            raise ConfigError(f"key 'scale_rewards': '{self.scale_rewards}' is not one of "
                              f"{', '.join(SCALE_REWARDS)}")
        if self.beta < 0 or self.epsilon <= 0 or (self.epsilon_high or 1) <= 0:
            raise ConfigError("keys 'beta' >= 0, 'epsilon' > 0 and 'epsilon_high' > 0 expected")
        if self.reward_error_limit < 0 or self.log_completions_steps < 0:
            raise ConfigError("keys 'reward_error_limit' and 'log_completions_steps' must be >= 0")


def _check_rewards(p: GRPOParams) -> None:
    from ..rewards import check_reward_names
    from ..rewards.model import check_reward_model_dir

    if not p.reward_funcs and not p.reward_model:
        raise ConfigError("stage: grpo needs rewards: set reward_funcs (e.g. format_think, "
                          "exact_answer, mymodule:myfunction) and/or reward_model")
    check_reward_names(p.reward_funcs)  # a module:function that does not import stops here
    if p.reward_model:
        check_reward_model_dir(p.reward_model)
    n = len(p.reward_funcs) + bool(p.reward_model)
    if p.reward_weights is not None and len(p.reward_weights) != n:
        raise ConfigError(f"key 'reward_weights': {len(p.reward_weights)} weights for {n} "
                          "reward functions (reward_funcs, then reward_model)")
    if "regex" in p.reward_funcs and not p.reward_regex:
        raise ConfigError("reward function 'regex' needs reward_regex: a pattern")
    if p.reward_regex:
        try:
            re.compile(p.reward_regex)
        except re.error as exc:
            raise ConfigError(f"key 'reward_regex': not a valid pattern: {exc}") from None
    if "contains" in p.reward_funcs and not p.reward_contains:
        raise ConfigError("reward function 'contains' needs reward_contains: strings to look for")


def _check(cfg) -> None:
    check_online(cfg, "grpo")
    _check_rewards(stage_params(cfg))


def _trainer_kwargs(cfg, model, tokenizer) -> dict:
    from ..rewards import build_rewards
    from ..rewards.model import load_reward_scorer
    from ..rollout import build_sampler, gen_params

    params = stage_params(cfg)
    template = stage_template(cfg, tokenizer)
    rewards = build_rewards(params, lambda path: load_reward_scorer(path, cfg, tokenizer, template))
    return {"grpo": params, "rewards": rewards,
            "sampler": build_sampler(cfg, model, tokenizer, template), "packing": cfg.data.packing,
            "gen": gen_params(cfg.infer, params.max_completion_length),
            "ref_model": reference_model(cfg, model) if params.beta else None}



register_stage(Stage(
    name="grpo",
    summary="online RL: sample num_generations completions per prompt, score them with "
            "reward functions, train on group-relative advantages",
    **PROMPT_DATA,
    check=_check,
    trainer="grpo_trainer:GRPOTrainer",
    trainer_kwargs=_trainer_kwargs,
    plots=("reward", "kl", "completions/mean_length", "clip_ratio/region_mean"),
    params=GRPOParams,
))
