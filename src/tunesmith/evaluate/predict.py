"""Batched generation on a dataset, scored against its reference answers.

Writes ``generated_predictions.jsonl`` (prompt, predict, label per row, in dataset order) and
``predict_results.json`` (``predict_bleu-4``, ``predict_rouge-1/2/l``, ... as LLaMA-Factory names
them) into ``output_dir``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError
from ..infer.engine import ContextLengthError, GenParams
from .metrics import DESCRIPTION, check_metrics, compute_metrics
from .samples import Sample, load_samples

if TYPE_CHECKING:
    from ..config import RunConfig


def check_lengths(engine, samples: list[Sample], params: GenParams) -> list[int]:
    """Prompt token counts; a prompt that does not fit the context names its row."""
    lengths = [engine.count_tokens(s.messages) for s in samples]
    for sample, n in zip(samples, lengths):
        if n >= engine.context_length:
            err = ContextLengthError(n, params.max_new_tokens, engine.context_length)
            raise DataError(f"{sample.origin}: {err}")
    return lengths


def generate_all(engine, samples: list[Sample], params: GenParams, batch_size: int,
                 progress: bool = True) -> list[str]:
    """Generated answers in sample order. The engine decodes ``batch_size`` rows at a time and
    refills a finished row's slot at once (continuous batching), so a batch never waits for its
    longest answer."""
    from tqdm import tqdm

    check_lengths(engine, samples, params)
    bar = tqdm(total=len(samples), desc="predict", unit="row", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    outs = engine.batch_generate([s.messages for s in samples], params, max_batch=batch_size,
                                 on_done=bar.update)
    bar.close()
    return [out.text.strip() for out in outs]


def write_predictions(out: Path, engine, samples: list[Sample], predicts: list[str]) -> Path:
    """``generated_predictions.jsonl``: the rendered prompt, the prediction and the label."""
    path = out / "generated_predictions.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for sample, predict in zip(samples, predicts):
            prompt = engine.template.generation_prompt(engine.tokenizer, sample.messages)
            row = {"prompt": prompt, "predict": predict, "label": sample.label}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def run_predict(cfg: RunConfig, engine=None, progress: bool = True) -> dict:
    """Generate on the configured dataset and write predictions and metrics.

    Args:
        cfg: a RunConfig (dataset, model, adapter, metrics, per_device_eval_batch_size).
        engine: an already loaded engine (default: load one from cfg).
    Returns:
        The metrics written to ``predict_results.json``.
    """
    from ..infer.load import load_engine

    names = check_metrics(cfg.infer.metrics)
    engine = engine or load_engine(cfg)
    samples, report, where = load_samples(cfg, engine.tokenizer, engine.template)
    print(f"predict on {where}: {len(samples)} rows ({report.summary()})", file=sys.stderr)
    params = GenParams.from_config(cfg.infer, seed=cfg.train.seed)
    start = time.time()
    predicts = generate_all(engine, samples, params, cfg.train.per_device_eval_batch_size, progress)
    runtime = time.time() - start
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out, engine, samples, predicts)
    scores = compute_metrics(predicts, [s.label for s in samples], names)
    results = {**{f"predict_{k}": v for k, v in scores.items()},
               "predict_samples": len(samples), "predict_runtime": round(runtime, 3),
               "predict_samples_per_second": round(len(samples) / max(runtime, 1e-9), 3),
               "predict_batch_size": cfg.train.per_device_eval_batch_size,
               "predict_split": where, "metrics_method": DESCRIPTION}
    (out / "predict_results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False),
                                              encoding="utf-8")
    report.save(out)
    return results
