"""``tunesmith train``: fine-tune per the config (``--do_predict`` runs predict instead)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps on a few rows, to check a config end to end")


SMOKE = {"max_steps": 3, "max_samples": 16, "logging_steps": 1, "save_strategy": "no"}


def run(args) -> int:
    from . import load_run_config

    overrides = list(args.overrides)
    if args.smoke:
        overrides += [f"{k}={v}" for k, v in SMOKE.items()]
    args.overrides = overrides
    cfg = load_run_config(args)
    if cfg.train.do_predict and not cfg.train.do_train:
        from .predict import run_predict_config

        return run_predict_config(cfg)
    from ..train.sft import run_sft

    metrics = run_sft(cfg)
    loss = metrics.get("train_loss")
    print(f"done: train_loss={loss:.4f} in {metrics['wall_time_s']:.0f}s -> {cfg.train.output_dir}"
          if loss is not None else f"done -> {cfg.train.output_dir}")
    return 0
