"""Loss and perplexity of a model (+ adapter) on a dataset, with the training template and masks.

The loss is the mean over every supervised (label != -100) token of the whole dataset, not the
mean of per-batch means, so it does not depend on the batch size; perplexity = exp(loss).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data.collate import PadCollator
from ..data.load import load_data
from ..data.tokenize import IGNORE

if TYPE_CHECKING:
    from ..config import RunConfig


@torch.inference_mode()
def token_losses(model, examples, pad_id: int, batch_size: int) -> tuple[float, int]:
    """Summed next-token cross-entropy over the label tokens, and how many there were."""
    collate = PadCollator(pad_id)
    total, count = 0.0, 0
    device = model.device
    for i in range(0, len(examples), batch_size):
        batch = collate([{"input_ids": e.input_ids, "labels": e.labels}
                         for e in examples[i:i + batch_size]])
        logits = model(input_ids=batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits  # (B, T, V)
        labels = batch["labels"][:, 1:].to(device)  # (B, T-1): token t predicts t+1
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
            ignore_index=IGNORE, reduction="sum")
        total += loss.item()
        count += int((labels != IGNORE).sum())
    return total, count


def run_eval(cfg: RunConfig, engine=None) -> dict:
    """Evaluate per ``cfg``; writes ``eval_results.json`` into ``output_dir``.

    Uses ``eval_dataset``, else the validation split (``val_size``), else the whole dataset.
    """
    from ..infer.load import load_hf_engine

    engine = engine or load_hf_engine(cfg)  # needs the torch model itself, whatever the backend
    data = load_data(cfg, engine.tokenizer, engine.template)
    examples = data.eval if (cfg.data.eval_dataset or cfg.data.val_size) else data.train
    split = ("eval_dataset" if cfg.data.eval_dataset else
             f"validation split (val_size={cfg.data.val_size})" if cfg.data.val_size else "dataset")
    print(f"eval on {split}: {len(examples)} examples ({data.report.summary()})", file=sys.stderr)
    start = time.time()
    total, count = token_losses(engine.model, examples, engine.tokenizer.pad_token_id,
                                cfg.train.per_device_eval_batch_size)
    loss = total / max(count, 1)
    results = {"eval_loss": round(loss, 6), "eval_perplexity": round(math.exp(min(loss, 700)), 4),
               "eval_samples": len(examples), "eval_label_tokens": count,
               "eval_runtime": round(time.time() - start, 3), "eval_split": split,
               "model": cfg.model.model_name_or_path, "adapter": cfg.model.adapter_name_or_path}
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval_results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results
