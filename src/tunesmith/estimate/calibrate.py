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


def _stage_step(cfg, model, tokenizer, examples):
    """(dataset, collate, loss of a batch) as the run's stage trains: SFT/pt through the
    model's own loss; preference stages through their Trainer's ``compute_loss`` (policy and
    reference passes, KL batch, value head)."""
    from ..data.load import LoadedData
    from ..data.report import DataReport
    from ..train.stages import get_stage

    stage = get_stage(cfg.method.stage)
    dataset, collate = stage.dataset(examples, cfg), stage.collator(cfg, tokenizer)
    if stage.trainer_kwargs is None and stage.prepare_model is None:
        return dataset, collate, lambda batch: model(**batch).loss
    from ..train.run import build_trainer

    trainer = build_trainer(cfg, model, tokenizer, LoadedData(examples, [], DataReport()))
    return dataset, collate, lambda batch: trainer.compute_loss(model, batch)


def calibrate(cfg: RunConfig, steps: int = 3) -> dict:
    """``{"seconds_per_step", "tokens_per_s", "epoch_s", "total_s"}`` from ``steps`` real steps."""
    import torch

    from ..data.load import load_data
    from ..methods import method_params
    from ..model.load import load_tokenizer, resolve_model_path
    from ..train.arguments import cpu_autocast
    from ..train.model import apply_method, forward_backward, load_for_training
    from ..train.stages import check_stage, stage_template

    stage = check_stage(cfg)
    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    template = stage_template(cfg, tokenizer, stage)
    examples = load_data(cfg, tokenizer, template, kind=stage.data_kind).train
    method, params = method_params(cfg)
    model = apply_method(method, load_for_training(cfg, path), params, cfg)
    if stage.prepare_model is not None:
        model = stage.prepare_model(cfg, model)
    if getattr(cfg.train, "fast_loss", False):
        from ..train.fast_loss import enable_fast_loss

        enable_fast_loss(model)
    model.train()
    dataset, collate, loss_of = _stage_step(cfg, model, tokenizer, examples)
    lengths = dataset.lengths()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    b, n = cfg.train.per_device_train_batch_size, len(dataset)
    rates = []
    autocast = cpu_autocast(cfg)  # the same mixed precision as training (train/run.py)
    for i in range(steps):
        idx = [j % n for j in range(i * b, (i + 1) * b)]
        batch = collate([dataset[j] for j in idx])
        start = time.perf_counter()
        forward_backward(model, lambda: loss_of(batch), autocast)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rates.append(sum(lengths[j] for j in idx) / (time.perf_counter() - start))
    rate = max(rates[1:] or rates)
    epoch_tokens, per_epoch = sum(lengths), max(1, -(-n // b))
    total = epoch_tokens * cfg.train.num_train_epochs / rate
    if cfg.train.max_steps and cfg.train.max_steps > 0:
        total = cfg.train.max_steps * epoch_tokens / per_epoch / rate
    return {"tokens_per_s": round(rate, 1), "seconds_per_step": round(epoch_tokens / rate /
                                                                       per_epoch, 2),
            "epoch_s": round(epoch_tokens / rate, 1), "total_s": round(total, 1)}
