"""Prompt tuning: trainable soft-prompt embeddings before the input (peft PromptTuning).

``prompt_tuning_init_text`` initialises them from the embeddings of a text (repeated or cut to
``num_virtual_tokens``), which trains faster than a random start. Not mergeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from . import register_method, wrap_peft
from .prefix import check_virtual_tokens

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class PromptParams:
    num_virtual_tokens: int = 20
    prompt_tuning_init_text: str | None = None  # None: random init

    def check(self) -> None:
        check_virtual_tokens(self.num_virtual_tokens)
        if self.prompt_tuning_init_text is not None and not self.prompt_tuning_init_text.strip():
            raise ConfigError("key 'prompt_tuning_init_text': empty; leave it unset for a random init")


@register_method("prompt", PromptParams, mergeable=False,
                 summary="trainable soft-prompt embeddings before the input (prompt tuning)")
def apply_prompt(model, params: PromptParams, cfg: RunConfig):
    """Wrap ``model`` with peft's ``PromptTuningConfig``."""
    from peft import PromptTuningConfig

    from ..model.load import resolve_model_path

    text = params.prompt_tuning_init_text
    config = PromptTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=params.num_virtual_tokens,
        prompt_tuning_init="TEXT" if text else "RANDOM", prompt_tuning_init_text=text,
        tokenizer_name_or_path=str(resolve_model_path(cfg.model.model_name_or_path, quiet=True,
                                                    model_cfg=cfg.model))
        if text else None)
    return wrap_peft(model, config, "prompt")
