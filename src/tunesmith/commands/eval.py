"""``tunesmith eval``: loss and perplexity of a model (+ adapter) on a dataset."""

from __future__ import annotations


def run(args) -> int:
    from ..evaluate.loss import run_eval
    from . import load_run_config

    cfg = load_run_config(args)
    results = run_eval(cfg)
    print("***** eval metrics *****")
    for key in ("eval_loss", "eval_perplexity", "eval_samples", "eval_label_tokens", "eval_runtime"):
        print(f"  {key:20} = {results[key]}")
    print(f"-> {cfg.train.output_dir}/eval_results.json")
    return 0
