"""``tunesmith train``: fine-tune per the config; ``--do_predict`` predicts (after training when
``do_train`` is set too, as in LLaMA-Factory); ``--do_eval`` without ``do_train`` evaluates only.

Exit codes: 0 done; 2 a user error (bad config, NaN loss with nan_policy: stop, disk full);
130 stopped by SIGINT and 143 by SIGTERM, each after saving a checkpoint that
``resume_from_checkpoint=auto`` continues exactly.
"""

from __future__ import annotations

import sys

EXIT_HELP = ("exit codes: 0 done, 2 user error (config, NaN loss, disk full), 130 SIGINT / "
             "143 SIGTERM after saving a resumable checkpoint (resume_from_checkpoint=auto)")


def add_arguments(parser) -> None:
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps on a few rows, to check a config end to end")
    parser.epilog = f"{parser.epilog or ''}\n\n{EXIT_HELP}"


SMOKE = {"max_steps": 3, "max_samples": 16, "logging_steps": 1, "save_strategy": "no"}


def _argv(args) -> list[str]:
    return ([args.config] if args.config else []) + list(args.overrides)


def run(args) -> int:
    from . import load_run_config

    overrides = list(args.overrides)
    if args.smoke:
        overrides += [f"{k}={v}" for k, v in SMOKE.items()]
    args.overrides = overrides
    cfg = load_run_config(args)
    from .predict import run_predict_config

    if cfg.train.do_predict and not cfg.train.do_train:
        return run_predict_config(cfg)
    if cfg.train.do_eval and not cfg.train.do_train:  # LLaMA-Factory: evaluate only
        from .eval import run_eval_config

        return run_eval_config(cfg)
    from ..train.distributed import is_launched

    t = cfg.train
    if (t.nproc_per_node > 1 or t.nnodes > 1 or t.deepspeed) and not is_launched():
        from ..train.launcher import relaunch

        return relaunch(t, _argv(args))
    code = _train(cfg)
    if code == 0 and cfg.train.do_predict:  # LLaMA-Factory: --do_train --do_predict does both
        cfg.model.adapter_name_or_path = _trained_adapter(cfg)
        return run_predict_config(cfg)
    return code


def _trained_adapter(cfg) -> str | None:
    """The run's adapter dir for predict-after-train (None when a full model was saved)."""
    from pathlib import Path

    out = Path(cfg.train.output_dir)
    if (out / "adapter_config.json").is_file():
        return str(out)
    cfg.model.model_name_or_path = str(out)
    return None


def _train(cfg) -> int:
    from ..errors import TrainingInterrupted
    from ..train.distributed import is_main_process
    from ..train.run import run_training

    try:
        metrics = run_training(cfg)
    except TrainingInterrupted as stop:
        if is_main_process():
            print(f"stopped: {stop}", file=sys.stderr, flush=True)
        return stop.exit_code
    if not is_main_process():
        return 0
    loss = metrics.get("train_loss")
    print(f"done: train_loss={loss:.4f} in {metrics['wall_time_s']:.0f}s -> {cfg.train.output_dir}"
          if loss is not None else f"done -> {cfg.train.output_dir}")
    return 0
