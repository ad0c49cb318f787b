"""(IA)^3: learned per-channel scaling of attention keys/values and feed-forward activations.

``ia3_target`` names the scaled layers (default: peft's choice for the architecture, for Llama
``k_proj, v_proj, down_proj``); ``ia3_feedforward`` says which of them are feed-forward layers
(their input is scaled instead of their output). Mergeable: the scaling folds into the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..model.checkpointing import checkpoint_mode
from . import register_method, wrap_peft
from .lora import target_modules

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class IA3Params:
    ia3_target: list[str] | None = None  # None: peft's default for the architecture
    ia3_feedforward: list[str] | None = None
    modules_to_save: list[str] | None = None

    def check(self) -> None:
        if self.ia3_feedforward and not self.ia3_target:
            raise ConfigError("key 'ia3_feedforward' needs 'ia3_target' (feed-forward layers must "
                              "be among the targets)")
        if self.ia3_feedforward and isinstance(target_modules(self.ia3_target), list):
            extra = [m for m in self.ia3_feedforward if m not in self.ia3_target]
            if extra:
                raise ConfigError(f"key 'ia3_feedforward': {', '.join(extra)} not in ia3_target "
                                  f"({', '.join(self.ia3_target)})")


def build_ia3_config(params: IA3Params):
    from peft import IA3Config

    targets = None if params.ia3_target is None else target_modules(params.ia3_target)
    return IA3Config(task_type="CAUSAL_LM", target_modules=targets,
                     feedforward_modules=params.ia3_feedforward if targets is not None else None,
                     modules_to_save=params.modules_to_save)


@register_method("ia3", IA3Params, summary="learned scaling vectors on keys, values and FFN (IA3)")
def apply_ia3(model, params: IA3Params, cfg: RunConfig):
    """Wrap ``model`` with peft's ``IA3Config``."""
    if checkpoint_mode(cfg.train.gradient_checkpointing):
        model.enable_input_require_grads()
    return wrap_peft(model, build_ia3_config(params), "ia3")
