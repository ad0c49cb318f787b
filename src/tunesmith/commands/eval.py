"""``tunesmith eval``: loss and perplexity of a model (+ adapter) on a dataset; under a
preference stage, pair accuracy (dpo, kto) or reward accuracy (rm)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


def run(args) -> int:
    from . import load_run_config

    return run_eval_config(load_run_config(args))


def run_eval_config(cfg: RunConfig) -> int:
    """Evaluate per ``cfg`` and print the metrics (also ``train --do_eval`` without do_train)."""
    from ..evaluate import run_evaluator

    results = run_evaluator(cfg)
    print("***** eval metrics *****")
    for key, value in results.items():
        if key.startswith("eval_") and key != "eval_split":
            print(f"  {key:30} = {value}")
    print(f"-> {cfg.train.output_dir}/eval_results.json")
    return 0
