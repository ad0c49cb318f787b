"""QLoRA: LoRA on a 4-bit (NF4/FP4, double quant) or 8-bit base, with k-bit preparation."""

from __future__ import annotations

from dataclasses import dataclass

from . import register_method
from .lora import LoraParams, build_lora_config


@dataclass
class QLoraParams(LoraParams):
    pass


@register_method("qlora", QLoraParams, quantize_base=True, mergeable=False,
                 summary="LoRA on a 4/8-bit quantized base (bitsandbytes)")
def apply_qlora(model, params: QLoraParams, cfg):
    """Prepare the k-bit base (casts norms to fp32, enables input grads) and add LoRA."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=cfg.train.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False})
    return get_peft_model(model, build_lora_config(params))
