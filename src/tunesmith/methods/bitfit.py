"""BitFit: train only the bias terms; a full model is saved.

Many current decoders (Llama, Mistral, SmolLM2) have no bias parameters at all: BitFit then has
nothing to train, and we say so instead of silently training something else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..model.checkpointing import checkpoint_mode
from . import register_method

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class BitFitParams:
    def check(self) -> None:
        """No parameters: BitFit's only choice is which model it is applied to."""


def bias_names(model) -> list[str]:
    return [name for name, _ in model.named_parameters() if name.rsplit(".", 1)[-1] == "bias"]


@register_method("bitfit", BitFitParams, saves_adapter=False, mergeable=False,
                 summary="train only bias terms (needs a model that has biases)")
def apply_bitfit(model, params: BitFitParams, cfg: RunConfig):
    """Freeze everything but the biases; a model without biases is a ConfigError."""
    biases = set(bias_names(model))
    if not biases:
        raise ConfigError(f"method 'bitfit': this {model.config.model_type} model has no bias "
                          "parameters, so there is nothing to train; choose ia3 (fewest "
                          "parameters) or lora, or a model with biases (e.g. Qwen2 attention)")
    for name, p in model.named_parameters():
        p.requires_grad_(name in biases)
    if checkpoint_mode(cfg.train.gradient_checkpointing):
        model.enable_input_require_grads()
    return model
