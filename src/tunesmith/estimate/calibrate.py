"""Time per step from a couple of real training steps on the first batches of the data.

The steps use the run's own model loading, method, collator (padded or packed) and loss path;
the first step pays one-time costs (kernel selection, allocator warm-up), so the estimate takes
the fastest of the later steps and scales by tokens: seconds per token x tokens per epoch.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


def _collator(cfg, tokenizer):
    from ..data.packing import pad_or_pack

    return pad_or_pack(cfg.data.packing, tokenizer.pad_token_id)


def calibrate(cfg: RunConfig, steps: int = 3) -> dict:
    """``{"seconds_per_step", "tokens_per_s", "epoch_s", "total_s"}`` from ``steps`` real steps."""
    import torch

    from ..data.load import load_data
    from ..data.templates import get_template
    from ..methods import method_params
    from ..model.load import load_tokenizer, resolve_model_path
    from ..train.arguments import cpu_autocast
    from ..train.model import forward_backward, load_for_training

    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    template = get_template(cfg.model.template, tokenizer, cfg.model.default_system)
    examples = load_data(cfg, tokenizer, template).train
    method, params = method_params(cfg)
    model = method.apply(load_for_training(cfg, path), params, cfg)
    if getattr(cfg.train, "fast_loss", False):
        from ..train.fast_loss import enable_fast_loss

        enable_fast_loss(model)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    b, collate = cfg.train.per_device_train_batch_size, _collator(cfg, tokenizer)
    rates = []
    autocast = cpu_autocast(cfg)  # the same mixed precision as training (train/run.py)
    for i in range(steps):
        rows = examples[i * b:(i + 1) * b] or examples[:b]
        batch = collate([{"input_ids": e.input_ids, "labels": e.labels} for e in rows])
        start = time.perf_counter()
        forward_backward(model, lambda: model(**batch).loss, autocast)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rates.append(sum(len(e.input_ids) for e in rows) / (time.perf_counter() - start))
    rate = max(rates[1:] or rates)
    epoch_tokens = sum(len(e.input_ids) for e in examples)
    total = epoch_tokens * cfg.train.num_train_epochs / rate
    if cfg.train.max_steps and cfg.train.max_steps > 0:
        total = cfg.train.max_steps * epoch_tokens / max(1, -(-len(examples) // b)) / rate
    return {"tokens_per_s": round(rate, 1), "seconds_per_step": round(epoch_tokens / rate / max(
        1, -(-len(examples) // b)), 2), "epoch_s": round(epoch_tokens / rate, 1),
            "total_s": round(total, 1)}
