"""The model as training needs it: dtype, optional k-bit quantization, gradient checkpointing."""

from __future__ import annotations

from ..model.load import load_model
from .arguments import training_dtype


def load_for_training(cfg, path):
    """Load the base model for training in the dtype the hardware and config choose."""
    quant = None
    if cfg.model.quantization_bit:
        from ..model.quantize import quantization_config

        quant = quantization_config(cfg.model)
    model = load_model(cfg.model, dtype=training_dtype(cfg), path=path, quantization_config=quant)
    model.config.use_cache = False
    if cfg.train.gradient_checkpointing:
        enable_checkpointing(model)
    if cfg.train.fast_loss:
        from .fast_loss import enable_fast_loss

        enable_fast_loss(model)
    return model


def enable_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing of every decoder layer (transformers 5.x's
    ``activation_checkpointing_enable``; the older name where that is missing)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def describe_trainable(model) -> str:
    """``trainable params: N / M (x%), ~K MiB trainable``."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    mem = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad) / 2**20
    return (f"trainable params: {trainable:,} / {total:,} ({100 * trainable / max(total, 1):.3f}%), "
            f"{mem:.1f} MiB trainable")
