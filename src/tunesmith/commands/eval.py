"""``tunesmith eval``: loss and perplexity of a model (+ adapter) on a dataset."""

from __future__ import annotations


def run(args) -> int:
    from . import load_run_config

    return run_eval_config(load_run_config(args))


def run_eval_config(cfg) -> int:
    """Evaluate per ``cfg`` and print the metrics (also ``train --do_eval`` without do_train)."""
    from ..evaluate.loss import run_eval

    results = run_eval(cfg)
    print("***** eval metrics *****")
    for key in ("eval_loss", "eval_perplexity", "eval_samples", "eval_label_tokens", "eval_runtime"):
        print(f"  {key:20} = {results[key]}")
    print(f"-> {cfg.train.output_dir}/eval_results.json")
    return 0
