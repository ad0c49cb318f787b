"""Optimizers other than the Trainer's default: LoRA+ (``loraplus_lr_ratio``).

LoRA+ (Hayou et al., 2024) trains each LoRA ``B`` matrix with a learning rate ``ratio`` times
that of ``A`` (and LoRA on embeddings at ``loraplus_lr_embedding``); peft's
``create_loraplus_optimizer`` builds the parameter groups around the optimizer ``optim`` names,
so every optimizer choice (adamw_torch, adamw_8bit, ...) keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..config import RunConfig


def optimizer_factory(cfg: RunConfig) -> Callable | None:
    """``(model, args) -> optimizer`` for the run, or None for the Trainer's own optimizer."""
    from ..methods import method_params

    _, params = method_params(cfg)
    ratio = getattr(params, "loraplus_lr_ratio", None)
    if not ratio:
        return None
    embedding_lr = params.loraplus_lr_embedding

    def build(model, args):
        from peft.optimizers import create_loraplus_optimizer
        from transformers import Trainer

        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
        kwargs = dict(kwargs)
        lr = kwargs.pop("lr", args.learning_rate)
        return create_loraplus_optimizer(model, optimizer_cls, lr=lr, loraplus_lr_ratio=ratio,
                                         loraplus_lr_embedding=embedding_lr,
                                         loraplus_weight_decay=args.weight_decay, **kwargs)

    return build
