"""Activation checkpointing of the decoder layers: full or selective.

``gradient_checkpointing: true`` (full) keeps only each layer's input and runs the whole layer's
forward again during backward: the least memory, about a third more compute. ``selective`` keeps
what is expensive to recompute -- the outputs of the layer's matrix products with the base
weights and of its attention kernel -- and recomputes only the cheap work between them (norms,
rotary embedding, the activation function, casts, a low-rank adapter's second product), through
torch's selective activation checkpointing (a policy over the operations a layer runs). What it
drops are the element-wise intermediates and the fp32 copies that the norms and casts keep: on
SmolLM2 with LoRA on every linear layer about 45% of the activations (W2, fp32, AMD EPYC:
peak RSS 7.8 vs 12.0 GiB) for 6% of the speed (full checkpointing cost 31% there;
docs/performance.md). Both use torch's non-reentrant checkpoint, so gradients equal those of an
unchecked run (tests/unit/train/test_checkpointing.py).
"""

from __future__ import annotations

import functools

FULL = "full"
SELECTIVE = "selective"
EXPANSION = 4  # a product whose output is this many times wider than its inner dimension (a
# low-rank adapter's second factor, r -> hidden) is cheap to redo and as large as the base's: redone


def checkpoint_mode(value) -> str | None:
    """The mode a ``gradient_checkpointing`` value asks for: ``full``, ``selective`` or None
    (``false``, or ``auto`` before train/auto.py has decided it)."""
    if value is True:
        return FULL
    return SELECTIVE if value == SELECTIVE else None


@functools.lru_cache(maxsize=1)
def _kept_ops():
    import torch

    aten = torch.ops.aten
    names = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
             "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention")
    attention = {getattr(aten, n).default for n in names if hasattr(aten, n)}
    return attention, {aten.mm.default: 0, aten.addmm.default: 1}


def _policy(ctx, op, *args, **kwargs):
    """Keep attention kernels' and full-rank products' outputs; recompute everything else."""
    from torch.utils.checkpoint import CheckpointPolicy

    attention, products = _kept_ops()
    if op in attention:
        return CheckpointPolicy.MUST_SAVE
    first = products.get(op)
    if first is not None and args[first].shape[-1] * EXPANSION > args[first + 1].shape[-1]:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def checkpoint_kwargs(mode: str) -> dict:
    """Keyword arguments for ``torch.utils.checkpoint.checkpoint`` in this mode."""
    kwargs = {"use_reentrant": False}
    if mode == SELECTIVE:
        from torch.utils.checkpoint import create_selective_checkpoint_contexts

        kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts, _policy)
    return kwargs


def enable_checkpointing(model, mode: str = FULL) -> None:
    """Checkpoint every decoder layer of ``model`` (transformers 5.x's
    ``activation_checkpointing_enable``; the older name where that is missing)."""
    kwargs = checkpoint_kwargs(mode)
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
