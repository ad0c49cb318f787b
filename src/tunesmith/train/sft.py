"""run_sft: tokenizer -> template -> dataset -> model -> method -> trainer -> train -> save."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..config import save_config
from ..data.collate import PadCollator
from ..data.load import load_data
from ..data.templates import get_template
from ..methods import method_params
from ..model.load import load_tokenizer, resolve_model_path
from .arguments import build_training_args
from .callbacks import LogCallback, NanGuard, peak_memory_mb
from .dataset import ExampleDataset
from .model import load_for_training, describe_trainable
from .records import plot_loss, write_model_card


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_sft(cfg) -> dict:
    """Train per ``cfg`` and write the complete run record to ``cfg.train.output_dir``.

    Returns:
        The final metrics (train loss, runtime, peak memory, ...).
    """
    start = time.time()
    out = Path(cfg.train.output_dir)
    save_config(cfg, out)
    path = resolve_model_path(cfg.model.model_name_or_path)
    tokenizer = load_tokenizer(cfg.model, path)
    template = None if cfg.method.stage == "pt" else get_template(
        cfg.model.template, tokenizer, cfg.model.default_system)
    data = load_data(cfg, tokenizer, template)
    data.report.save(out)
    log(data.report.summary())
    method, params = method_params(cfg)
    model = load_for_training(cfg, path)
    model = method.apply(model, params, cfg)
    log(describe_trainable(model))
    trainer = build_trainer(cfg, model, tokenizer, data)
    result = trainer.train(resume_from_checkpoint=cfg.train.resume_from_checkpoint)
    metrics = {**result.metrics, "peak_mem_mb": round(peak_memory_mb(), 1),
               "wall_time_s": round(time.time() - start, 2)}
    if data.eval:
        metrics.update(trainer.evaluate())
    save_run(trainer, tokenizer, cfg, out, metrics)
    return metrics


def build_trainer(cfg, model, tokenizer, data):
    from transformers import Trainer

    args = build_training_args(cfg)
    callbacks = [LogCallback(cfg.train.output_dir)]
    if cfg.train.nan_policy == "stop":
        callbacks.append(NanGuard())
    return Trainer(model=model, args=args, train_dataset=ExampleDataset(data.train),
                   eval_dataset=ExampleDataset(data.eval) if data.eval else None,
                   data_collator=PadCollator(tokenizer.pad_token_id),
                   processing_class=tokenizer, callbacks=callbacks)


def save_run(trainer, tokenizer, cfg, out: Path, metrics: dict) -> None:
    """Adapter or model, tokenizer, results JSON, loss plot and model card."""
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    trainer.save_metrics("train", {k: v for k, v in metrics.items() if not k.startswith("eval_")})
    if any(k.startswith("eval_") for k in metrics):
        trainer.save_metrics("eval", {k: v for k, v in metrics.items() if k.startswith("eval_")})
    trainer.save_state()
    if cfg.train.plot_loss:
        plot_loss(out)
        plot_loss(out, "eval_loss")
    write_model_card(out, cfg, metrics)
    log(f"saved to {out}")
