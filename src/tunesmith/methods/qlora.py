"""QLoRA: LoRA on a 4-bit (NF4/FP4, double quant) or 8-bit base, with k-bit preparation.

The quantization itself is chosen by model keys (``quantization_bit``, ``quantization_type``,
``double_quantization``; compute dtype = ``dtype``) and applied at load time by
``model/quantize.py``. To merge, export loads the base in full precision (or dequantizes it)
and merges the adapter there: a 4/8-bit weight cannot absorb a float delta.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model.checkpointing import checkpoint_kwargs, checkpoint_mode
from . import register_method, wrap_peft
from .lora import (
    LoraParams,
    build_lora_config,
    convert_saved_adapter,
    for_device,
    save_init_adapter,
)

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class QLoraParams(LoraParams):
    def check(self) -> None:
        super().check()
        if str(self.init_lora_weights).lower() == "loftq":
            from ..errors import ConfigError

            raise ConfigError("init_lora_weights: loftq quantizes the base itself; use it with "
                              "method: lora (not qlora, whose base is already quantized)")


@register_method("qlora", QLoraParams, quantize_base=True, after_save=convert_saved_adapter,
                 summary="LoRA on a 4/8-bit quantized base (bitsandbytes); merge after dequantize")
def apply_qlora(model, params: QLoraParams, cfg: RunConfig):
    """Prepare the k-bit base (casts norms to fp32, enables input grads) and add LoRA."""
    from peft import prepare_model_for_kbit_training

    params = for_device(model, params)
    # bitsandbytes' 8-bit matmul warns on every call that fp32 inputs are cast to fp16 (CPU).
    warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
    mode = checkpoint_mode(cfg.train.gradient_checkpointing)
    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=mode is not None,
        gradient_checkpointing_kwargs=checkpoint_kwargs(mode) if mode else None)
    model = wrap_peft(model, build_lora_config(params, model), "qlora")
    save_init_adapter(model, params, cfg)
    return model
