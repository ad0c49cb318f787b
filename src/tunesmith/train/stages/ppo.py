"""``stage: ppo``: PPO against a reward model trained with ``stage: rm`` (LLaMA-Factory's keys).

Prompts come from any chat/alpaca dataset (data kind ``prompts``); each gets one completion from
the policy (sampling: ``temperature``, ``top_p``, ``top_k``, ``max_new_tokens``, as in
``chat``), scored by ``reward_model``; a value head on the policy gives GAE advantages; the
clipped policy and value losses train the policy with an adaptive KL penalty to the reference
(the base with the adapter off, or a frozen copy for full/freeze). ``train/ppo_trainer.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from . import Stage, register_stage, stage_params, stage_template
from ._online import PROMPT_DATA, check_online, reference_model


@dataclass
class PPOParams:
    reward_model: str | None = None
    reward_model_type: str = "lora"
    ppo_epochs: int = 4
    ppo_buffer_size: int = 1
    ppo_target: float = 6.0
    ppo_score_norm: bool = False
    ppo_whiten_rewards: bool = False
    reward_error_limit: int = 10
    log_completions_steps: int = 10

    def check(self) -> None:
        if self.reward_model_type not in ("lora", "full"):
            raise ConfigError(f"key 'reward_model_type': '{self.reward_model_type}' is not "
                              "supported; give reward_model the output dir of a stage: rm run "
                              "(a LoRA adapter: lora, or a merged model: full)")
        for key in ("ppo_epochs", "ppo_buffer_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"key '{key}': must be a positive integer, got "
                                  f"{getattr(self, key)}")
        if self.ppo_target <= 0:
            raise ConfigError(f"key 'ppo_target': must be > 0, got {self.ppo_target}")


def _check(cfg) -> None:
    from ..rewards.model import check_reward_model_dir

    check_online(cfg, "ppo")
    params = stage_params(cfg)
    if not params.reward_model:
        raise ConfigError("stage: ppo needs reward_model: the output dir of a stage: rm run")
    check_reward_model_dir(params.reward_model)


def _prepare(cfg, model):
    from ..reward_model import attach_value_head

    return attach_value_head(model)


def _trainer_kwargs(cfg, model, tokenizer) -> dict:
    from ..rewards.model import load_reward_scorer
    from ..rollout import build_sampler, gen_params

    params = stage_params(cfg)
    template = stage_template(cfg, tokenizer)
    return {"ppo": params,
            "rewards": [load_reward_scorer(params.reward_model, cfg, tokenizer, template)],
            "sampler": build_sampler(cfg, model, tokenizer, template), "packing": cfg.data.packing,
            "gen": gen_params(cfg.infer, cfg.infer.max_new_tokens),
            "ref_model": reference_model(cfg, model)}



register_stage(Stage(
    name="ppo",
    summary="PPO against a reward model (stage: rm): value head, GAE, clipped policy and "
            "value losses, adaptive KL penalty to the reference",
    **PROMPT_DATA,
    check=_check,
    trainer="ppo_trainer:PPOTrainer",
    trainer_kwargs=_trainer_kwargs,
    prepare_model=_prepare,
    plots=("reward", "objective/kl", "ppo/loss/value", "completions/mean_length"),
    params=PPOParams,
))
