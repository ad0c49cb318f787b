"""4-bit / 8-bit base models through bitsandbytes (QLoRA); CPU kernels exist in bitsandbytes>=0.45."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import require
from ..hardware import torch_dtype

if TYPE_CHECKING:
    from ..config import ModelConfig


def quantization_config(model_cfg: ModelConfig, compute_dtype: str | None = None):
    """A ``BitsAndBytesConfig`` for ``quantization_bit`` 4 (NF4/FP4, double quant) or 8.

    Args:
        compute_dtype: what dequantized 4-bit weights are multiplied in: the run's training
            dtype (train/arguments.py: bf16 or fp16 on a GPU); default the model ``dtype``
            (``auto``: bf16 where the hardware is fast at it, else fp32 on a CPU).
    """
    require("bitsandbytes", "qlora", "quantization_bit (QLoRA)")
    from transformers import BitsAndBytesConfig

    if model_cfg.quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=model_cfg.quantization_type,
                              bnb_4bit_use_double_quant=model_cfg.double_quantization,
                              bnb_4bit_compute_dtype=torch_dtype(compute_dtype or model_cfg.dtype),
                              bnb_4bit_quant_storage="uint8")


def is_quantized(model) -> bool:
    """True when the (base) model was loaded in 4 or 8 bit by bitsandbytes."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False))
