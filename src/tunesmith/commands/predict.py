"""``tunesmith predict``: generate on a dataset and score BLEU-4 / ROUGE (or exact match)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


def add_arguments(parser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from . import load_run_config

    return run_predict_config(load_run_config(args), progress=not getattr(args, "no_progress", False))


def run_predict_config(cfg: RunConfig, progress: bool = True) -> int:
    """Predict per ``cfg`` (also reached by ``train --do_predict --predict_with_generate``)."""
    from ..evaluate import run_predictor

    results = run_predictor(cfg, progress=progress)  # the stage's own (rm: reward scores)
    print("***** predict metrics *****")
    for key, value in results.items():
        if key not in ("metrics_method", "predict_split"):
            print(f"  {key:28} = {value}")
    if "metrics_method" in results:
        print(f"(metrics: {results['metrics_method']})")
    print(f"predictions -> {cfg.train.output_dir}/generated_predictions.jsonl, "
          f"metrics -> {cfg.train.output_dir}/predict_results.json")
    return 0
