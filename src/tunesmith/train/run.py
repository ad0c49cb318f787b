"""run_training: tokenizer -> template -> dataset -> model -> method -> trainer -> train -> save.

The same story for every stage (``train/stages/``): the stage decides the template, the data
kind, the collator, the Trainer and the extra plots.

Resume: ``resume_from_checkpoint: auto`` picks the newest complete checkpoint; its fingerprint
must match this run's (base model, data, batch layout) unless ``resume_force: true``.
Interruption: SIGINT/SIGTERM finish the step, save a checkpoint and raise TrainingInterrupted
(exit 130/143). A non-finite loss stops before the update (NonFiniteLoss, exit 2).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from transformers import set_seed

from .. import methods
from ..config import save_config
from ..data.load import load_data
from ..methods import method_params
from ..model.load import load_tokenizer, resolve_model_path
from .arguments import build_training_args, cpu_autocast
from .auto import resolve_speed_keys, splits
from .callbacks import LogCallback, ProgressCallback, peak_memory_mb
from .checkpoint import (clean_stale, disk_full_error, is_disk_full, latest_checkpoint,
                         read_marker, resolve_resume)
from .distributed import check_same_run, is_main_process
from .fingerprint import check_resume, run_fingerprint
from .model import adapter_inputs_as_is, apply_method, describe_trainable, load_for_training
from .new_tokens import add_run_tokens, record_tokens, train_new_rows
from .optimizers import optimizer_factory
from .records import plot_loss, write_model_card
from .signals import StopOnSignal, StopRequest, interrupted, trap_signals
from .stages import Stage, check_stage, stage_template
from .trackers import setup_trackers, tracker_callbacks
from .trainer import NonFiniteLoss, non_finite_params

if TYPE_CHECKING:
    from ..config import RunConfig


def log(msg: str) -> None:
    if is_main_process():
        print(msg, file=sys.stderr, flush=True)


def run_training(cfg: RunConfig) -> dict:
    """Train per ``cfg`` and write the complete run record to ``cfg.train.output_dir``.

    Returns:
        The final metrics (train loss, runtime, peak memory, ...).
    Raises:
        TrainingInterrupted: after SIGINT/SIGTERM, once the resume checkpoint is saved.
        NonFiniteLoss: NaN/inf loss with ``nan_policy: stop``.
    """
    start = time.time()
    out = Path(cfg.train.output_dir)
    stage = check_stage(cfg)
    if cfg.data.streaming:
        from ..data.stream import check_streaming

        check_streaming(cfg, stage.data_kind)
    setup_trackers(cfg)
    args = build_training_args(cfg)  # every argument error before anything is loaded
    if is_main_process():
        save_config(cfg, out)
        clean_stale(out)
    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    add_run_tokens(cfg, tokenizer)  # new tokens tokenize as one id in the data
    template = stage_template(cfg, tokenizer, stage)
    data = _load(cfg, tokenizer, template, stage.data_kind)
    if is_main_process():
        data.report.save(out)
    log(_data_line(cfg, data))
    fingerprint = run_fingerprint(cfg, path, data, args.world_size)
    check_same_run(cfg, fingerprint)  # every node the same job (before any per-node choice)
    sample = data.train.sample(256) if cfg.data.streaming else data.train
    if resolve_speed_keys(cfg, sample, log, stage):
        args = build_training_args(cfg)  # with the checkpointing choice
    resume = find_resume(cfg, out, fingerprint)
    if resume and cfg.data.streaming:
        _resume_stream(data.train, resume)
    method, params = method_params(cfg)
    set_seed(cfg.train.seed)  # adapter init (LoRA A, ...) draws from the global RNG
    base = load_for_training(cfg, path)
    params = train_new_rows(base, tokenizer, method, params, cfg)  # resize_vocab / new tokens
    model = apply_method(method, base, params, cfg)
    if stage.prepare_model is not None:
        model = stage.prepare_model(cfg, model)
    log(describe_trainable(model))
    if cfg.train.torch_compile:
        from .compile import compile_layers

        log(f"torch_compile: {compile_layers(model)} decoder layers compiled (inductor, dynamic "
            "shapes); the first steps include the compilation")
    trainer = build_trainer(cfg, model, tokenizer, data, args=args, fingerprint=fingerprint,
                            stage=stage)
    result = train(trainer, resume, out, autocast_inputs=cpu_autocast(cfg))
    metrics = {**result.metrics, "peak_mem_mb": round(peak_memory_mb(), 1),
               "wall_time_s": round(time.time() - start, 2)}
    if trainer.nan_policy == "skip":
        metrics["skipped_steps"] = trainer.skipped_steps
    if data.eval:
        metrics.update(trainer.evaluate())
    save_run(trainer, tokenizer, cfg, out, metrics, plots=stage.plots)
    return metrics


def _load(cfg, tokenizer, template, kind: str):
    """The run's data: in memory, or a stream (``streaming: true``, data/stream.py)."""
    if cfg.data.streaming:
        from ..data.stream import load_stream

        return load_stream(cfg, tokenizer, template, kind=kind)
    return load_data(cfg, tokenizer, template, kind=kind)


def _data_line(cfg, data) -> str:
    if not cfg.data.streaming:
        return data.report.summary()
    return (f"data: streaming {', '.join(data.report.sources)} (buffer {cfg.data.buffer_size} "
            f"rows, {cfg.data.mix_strategy}); rows are counted in data_report.json as they are read")


def _resume_stream(stream, checkpoint: Path) -> None:
    from .stream_dataset import resume_stream

    at = resume_stream(stream, checkpoint)
    if at is None:
        log(f"warning: {checkpoint.name} has no stream position: the stream starts from its first row")
    else:
        log(f"stream: rows up to {at[0]} were trained on; continuing after them")


def find_resume(cfg: RunConfig, out: Path, fingerprint: dict) -> Path | None:
    """The checkpoint to resume from (checked against this run's fingerprint), or None."""
    value = cfg.train.resume_from_checkpoint
    resume = resolve_resume(value, out)
    if value and resume is None:
        log(f"no complete checkpoint in {out}: starting from the beginning")
    if resume is None:
        return None
    warning = check_resume(resume, read_marker(resume).get("fingerprint"), fingerprint,
                           cfg.train.resume_force)
    if warning:
        log(warning)
    log(f"resuming from {resume}")
    return resume


def train(trainer, resume: Path | None, out: Path, autocast_inputs: bool = False):
    """``trainer.train`` with SIGINT/SIGTERM turned into a checkpoint and TrainingInterrupted.

    ``autocast_inputs``: under CPU bf16 autocast, adapter layers take the bf16 activations as
    they are instead of copying them to their fp32 weights' dtype (autocast casts the small
    weights instead)."""
    request = StopRequest()
    trainer.add_callback(StopOnSignal(request))
    with trap_signals(request), adapter_inputs_as_is(trainer.model, autocast_inputs):
        try:
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        finally:
            for cb in trainer.callback_handler.callbacks:
                if isinstance(cb, ProgressCallback):
                    cb.close()
    if request.signum and trainer.state.global_step < trainer.state.max_steps:
        raise interrupted(request, latest_checkpoint(out), out)
    return result


def build_trainer(cfg: RunConfig, model, tokenizer, data, args=None, fingerprint=None,
                  stage: Stage | None = None):
    """The stage's Trainer with our callbacks (log, progress, the method's own), no dict printing."""
    from transformers.trainer_callback import PrinterCallback

    stage = stage or check_stage(cfg)
    args = args or build_training_args(cfg)
    extra = stage.trainer_kwargs(cfg, model, tokenizer) if stage.trainer_kwargs else {}
    callbacks = [LogCallback(cfg.train.output_dir), ProgressCallback(), *tracker_callbacks(cfg)]
    callbacks += methods.method_callbacks(cfg, model)
    if cfg.train.early_stopping_steps:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_steps))
    train_set, collator = None, stage.collator(cfg, tokenizer)
    if cfg.data.streaming:
        from .stream_dataset import stream_parts

        train_set, collator, position = stream_parts(data, collator, cfg.train.output_dir)
        callbacks.append(position)
    trainer = stage.trainer_class()(
        model=model, args=args, train_dataset=train_set or stage.dataset(data.train, cfg),
        eval_dataset=stage.dataset(data.eval, cfg) if data.eval else None,
        data_collator=collator,  # no processing_class: checkpoints skip the
        # tokenizer (MBs each; resume never needs it; the final dir gets it in save_run)
        callbacks=callbacks, nan_policy=cfg.train.nan_policy, fingerprint=fingerprint, **extra)
    trainer.remove_callback(PrinterCallback)
    trainer.optimizer_factory = optimizer_factory(cfg)
    if splits(stage) and cfg.train.micro_batch_tokens not in ("auto", 0, None):
        trainer.set_pass_tokens(cfg.train.micro_batch_tokens)
    return trainer


def save_run(trainer, tokenizer, cfg: RunConfig, out: Path, metrics: dict,
             plots: tuple = ()) -> None:
    """Adapter or model, tokenizer, results JSON, loss plots and model card."""
    bad = non_finite_params(trainer.model)
    if bad:
        raise NonFiniteLoss(f"refusing to save: parameter {bad[0]} is not finite (NaN/inf)")
    try:
        trainer.save_model(str(out))
        if trainer.is_world_process_zero():
            _save_records(trainer, tokenizer, cfg, out, metrics, plots)
    except (OSError, RuntimeError) as exc:  # torch/safetensors wrap short writes
        if is_disk_full(exc, out):
            raise disk_full_error(out, out) from None
        raise
    log(f"saved to {out}")


def _save_records(trainer, tokenizer, cfg, out: Path, metrics: dict, plots: tuple) -> None:
    methods.finish_save(trainer.model, cfg, out)
    record_tokens(cfg, trainer.model, out)
    tokenizer.save_pretrained(str(out))
    trainer.save_metrics("train", {k: v for k, v in metrics.items() if not k.startswith("eval_")})
    if any(k.startswith("eval_") for k in metrics):
        trainer.save_metrics("eval", {k: v for k, v in metrics.items() if k.startswith("eval_")})
    trainer.save_state()
    if cfg.train.plot_loss:
        plot_loss(out)
        for key in ("eval_loss", *plots):
            plot_loss(out, key)
    write_model_card(out, cfg, metrics)
