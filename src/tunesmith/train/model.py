"""The model as training needs it: dtype, optional k-bit quantization, activation checkpointing
(full or selective: model/checkpointing.py), the fused SwiGLU activation (model/fused_mlp.py)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..model.checkpointing import checkpoint_mode, enable_checkpointing
from ..model.load import load_model
from .arguments import training_dtype

if TYPE_CHECKING:
    from ..config import RunConfig


def load_for_training(cfg: RunConfig, path):
    """Load the base model for training in the dtype the hardware and config choose."""
    quant, dtype = None, training_dtype(cfg)
    if cfg.model.quantization_bit:  # the 4-bit compute dtype follows the training dtype
        from ..model.quantize import quantization_config

        quant = quantization_config(cfg.model, compute_dtype=dtype)
    model = load_model(cfg.model, dtype=dtype, path=path, quantization_config=quant)
    model.config.use_cache = False
    mode = checkpoint_mode(cfg.train.gradient_checkpointing)
    if mode:
        enable_checkpointing(model, mode)
    if cfg.train.fused_mlp:
        from ..model.fused_mlp import enable_fused_mlp

        enable_fused_mlp(model)
    if cfg.train.fast_loss:
        from .fast_loss import enable_fast_loss

        enable_fast_loss(model)
    return model


def apply_method(method, base, params, cfg: RunConfig):
    """The training method on the loaded base model, with the fused LoRA layers
    (``fused_lora``, methods/lora_fused.py) where the method made plain LoRA layers."""
    model = method.apply(base, params, cfg)
    if cfg.train.fused_lora:
        from ..methods.lora_fused import enable_fused_lora

        enable_fused_lora(model)
    return model


@contextmanager
def adapter_inputs_as_is(model, active: bool = True):
    """Under bf16 autocast: adapter layers that cast their input to their (fp32) weights' dtype
    stop doing so, and autocast casts the small weights instead. Only layers that have PEFT's
    ``cast_input_dtype_enabled`` switch are touched (IA3 and some others have none); restored on
    exit."""
    touched = [m for m in model.modules() if hasattr(m, "cast_input_dtype_enabled")] if active else []
    before = [m.cast_input_dtype_enabled for m in touched]
    for m in touched:
        m.cast_input_dtype_enabled = False
    try:
        yield
    finally:
        for m, value in zip(touched, before):
            m.cast_input_dtype_enabled = value


def forward_backward(model, compute_loss, autocast: bool = False):
    """``compute_loss()`` then its backward, the way training runs them: under CPU bf16 autocast
    when ``autocast`` (forward only), adapters taking bf16 inputs throughout (checkpointed layers
    run their forward again during backward). Returns the loss. For steps outside the Trainer
    (estimate calibration, ``bench speed``)."""
    from contextlib import nullcontext

    import torch

    with adapter_inputs_as_is(model, autocast):
        with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext():
            loss = compute_loss()
        loss.backward()
    return loss


def describe_trainable(model) -> str:
    """``trainable params: N / M (x%), ~K MiB trainable``."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    mem = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad) / 2**20
    return (f"trainable params: {trainable:,} / {total:,} ({100 * trainable / max(total, 1):.3f}%), "
            f"{mem:.1f} MiB trainable")
