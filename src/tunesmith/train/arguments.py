"""Build ``transformers.TrainingArguments`` in one function from our fields + ``trainer_args``."""

from __future__ import annotations

from ..hardware import detect, resolve_dtype

# Our TrainConfig fields passed to TrainingArguments under the same name.
PASS_THROUGH = (
    "output_dir", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "per_device_eval_batch_size", "gradient_accumulation_steps", "lr_scheduler_type",
    "warmup_steps", "weight_decay", "max_grad_norm", "optim", "seed", "gradient_checkpointing",
    "logging_steps", "eval_strategy", "save_strategy", "save_steps", "save_total_limit",
    "save_only_model", "load_best_model_at_end", "metric_for_best_model",
    "dataloader_num_workers", "run_name", "deepspeed", "torch_compile",
)


def precision_flags(cfg) -> dict:
    """Mixed precision flags: autocast only on CUDA; on CPU the weights' dtype is the choice."""
    t = cfg.train
    if t.bf16 is not None or t.fp16 is not None:
        dtype = "bf16" if t.bf16 else "fp16" if t.fp16 else "fp32"
    else:
        dtype = resolve_dtype(cfg.model.dtype)
    on_cuda = detect().device == "cuda"
    return {"bf16": on_cuda and dtype == "bf16", "fp16": on_cuda and dtype == "fp16"}


def training_dtype(cfg) -> str:
    """The dtype the model weights are loaded in for training."""
    t = cfg.train
    if t.bf16:
        return "bf16"
    if t.fp16:
        return "fp16" if detect().device == "cuda" else "fp32"
    if detect().device == "cuda":
        return "fp32" if cfg.method.method != "qlora" else resolve_dtype(cfg.model.dtype)
    return resolve_dtype(cfg.model.dtype)


def build_training_args(cfg, **overrides):
    """TrainingArguments from the config; ``trainer_args`` passes anything else through."""
    from transformers import TrainingArguments

    t = cfg.train
    kwargs = {name: getattr(t, name) for name in PASS_THROUGH}
    kwargs.update(precision_flags(cfg))
    if t.warmup_ratio and not t.warmup_steps:
        kwargs["warmup_steps"] = t.warmup_ratio  # transformers 5: a float < 1 is a ratio
    if t.eval_steps:
        kwargs["eval_steps"] = t.eval_steps
    if t.gradient_checkpointing:
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    report = [r for r in t.report_to if r != "none"]
    kwargs["report_to"] = report or "none"
    kwargs["remove_unused_columns"] = False
    if t.group_by_length:
        kwargs["train_sampling_strategy"] = "group_by_length"
    kwargs["disable_tqdm"] = True
    kwargs["logging_first_step"] = True
    kwargs.update(t.trainer_args)
    kwargs.update(overrides)
    if kwargs.get("save_strategy") == "no":
        kwargs.pop("save_total_limit", None)
    return TrainingArguments(**kwargs)
