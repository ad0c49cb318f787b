"""``tunesmith eval`` under a preference stage: how often the model prefers the chosen answer.

- dpo/kto (a policy): pair accuracy = share of pairs whose chosen answer has the higher summed
  log-probability (the policy would rather say it), with the mean log-prob margin and the mean
  per-token log-probs of each side.
- rm (a reward model): share of pairs whose chosen answer gets the higher reward, and the mean
  reward margin.

Run on ``eval_dataset``, else the validation split, else the whole dataset (as ``eval``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data.load import load_data

if TYPE_CHECKING:
    from ..config import RunConfig


@torch.inference_mode()
def pair_values(model, examples, pad_id: int, batch_size: int, reward: bool = False):
    """Per pair (chosen, rejected): summed answer log-probs, or rewards with ``reward``; and the
    answer token counts. ``examples`` alternate chosen/rejected (the pairs data kind)."""
    from ..data.pair_collate import PairCollator
    from ..train.pref_dataset import PairDataset
    from ..train.pref_logps import sequence_logps
    from ..train.reward_model import reward_scores

    share = getattr(model.config, "_attn_implementation", "") in ("sdpa", "hybrid")
    dataset, collate = PairDataset(examples), PairCollator(pad_id, share=share)
    values, counts = [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        batch = {k: v.to(model.device) for k, v in batch.items()}
        if reward:
            out, n = reward_scores(model, batch), torch.zeros(int(batch["n_seqs"]))
        else:
            out, n = sequence_logps(model, batch)
        values += list(zip(*(t.tolist() for t in out.float().chunk(2))))
        counts += list(zip(*(t.tolist() for t in n.chunk(2))))
    return values, counts


def _summary(values, counts, reward: bool) -> dict:
    n = max(len(values), 1)
    if reward:
        return {"eval_reward_accuracy": sum(c > r for c, r in values) / n,
                "eval_reward_margin": sum(c - r for c, r in values) / n}
    return {"eval_pair_accuracy": sum(c > r for c, r in values) / n,
            "eval_logp_margin": sum(c - r for c, r in values) / n,
            "eval_logps_per_token_chosen": sum(c / max(k, 1) for (c, _), (k, _) in
                                               zip(values, counts)) / n,
            "eval_logps_per_token_rejected": sum(r / max(k, 1) for (_, r), (_, k) in
                                                 zip(values, counts)) / n}


def run_pref_eval(cfg: RunConfig, engine=None, reward: bool = False) -> dict:
    """Pair accuracy (a policy) or reward accuracy (``reward``: a reward model) per ``cfg``;
    writes ``eval_results.json``."""
    from ..infer.load import load_hf_engine
    from ..train.reward_model import load_value_head

    engine = engine or load_hf_engine(cfg)
    if reward:
        _load_head(engine.model, cfg, load_value_head)
    data = load_data(cfg, engine.tokenizer, engine.template, kind="pairs")
    examples = data.eval if (cfg.data.eval_dataset or cfg.data.val_size) else data.train
    print(f"eval on {len(examples) // 2} pairs ({data.report.summary()})", file=sys.stderr)
    start = time.time()
    values, counts = pair_values(engine.model, examples, engine.tokenizer.pad_token_id,
                                 cfg.train.per_device_eval_batch_size, reward)
    results = {**{k: round(v, 6) for k, v in _summary(values, counts, reward).items()},
               "eval_pairs": len(values), "eval_runtime": round(time.time() - start, 3),
               "model": cfg.model.model_name_or_path, "adapter": cfg.model.adapter_name_or_path}
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval_results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def run_reward_predict(cfg: RunConfig, engine=None, progress: bool = True) -> dict:
    """A reward model's scores for every pair of the dataset (``predict`` under ``stage: rm``).

    Writes ``generated_predictions.jsonl`` (per pair, in dataset order: the prompt and the
    ``chosen``/``rejected`` rewards, as LLaMA-Factory's rm predict) and ``predict_results.json``
    (``predict_accuracy``: chosen scored higher; ``predict_margin``).
    """
    from ..infer.load import load_hf_engine
    from ..train.reward_model import load_value_head

    engine = engine or load_hf_engine(cfg)
    _load_head(engine.model, cfg, load_value_head)
    data = load_data(cfg, engine.tokenizer, engine.template, kind="pairs")
    examples = data.eval if (cfg.data.eval_dataset or cfg.data.val_size) else data.train
    start = time.time()
    values, _ = pair_values(engine.model, examples, engine.tokenizer.pad_token_id,
                            cfg.train.per_device_eval_batch_size, reward=True)
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "generated_predictions.jsonl").open("w", encoding="utf-8") as fh:
        for chosen_ex, (c, r) in zip(examples[::2], values):
            first = next(i for i, lab in enumerate(chosen_ex.labels) if lab != -100)
            prompt = engine.tokenizer.decode(chosen_ex.input_ids[:first])
            fh.write(json.dumps({"prompt": prompt, "chosen": round(c, 6), "rejected": round(r, 6)},
                                ensure_ascii=False) + "\n")
    summary = _summary(values, [], reward=True)
    results = {"predict_accuracy": round(summary["eval_reward_accuracy"], 6),
               "predict_margin": round(summary["eval_reward_margin"], 6),
               "predict_samples": len(values), "predict_runtime": round(time.time() - start, 3)}
    (out / "predict_results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    data.report.save(out)
    return results


def _load_head(model, cfg, load_value_head) -> None:
    from ..errors import ConfigError

    for folder in (cfg.model.adapter_name_or_path, cfg.model.model_name_or_path):
        if folder and load_value_head(model, folder):
            return
    raise ConfigError("stage: rm needs a reward model: adapter_name_or_path (or "
                      "model_name_or_path) must hold value_head.safetensors from an rm run")
