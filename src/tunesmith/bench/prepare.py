"""Everything a bench run needs, written once per workload: the tokenized rows (tunesmith's
tokenization, in training order), the raw rows for tools that tokenize themselves, and a spec.

The spec is the single source of the shared settings (model, LoRA, batch, lr, steps, dtype), so
every tool trains the same batches in the same order with the same hyperparameters.
"""

from __future__ import annotations

import json
from pathlib import Path

from .workloads import SHARED, Workload, train_overrides

# SmolLM2's chat template inserts this system prompt when a conversation has none; LLaMA-Factory's
# smollm2 template needs it as default_system to render the same text.
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _substitute(value, placeholders: dict):
    from ..data.load import _substitute as substitute

    return substitute(value, placeholders) if placeholders else value


def tokenized_examples(w: Workload, dtype: str = "auto"):
    """tunesmith's examples for the workload, the resolved model path and the training dtype."""
    from ..config import load_config
    from ..data.load import load_data
    from ..data.templates import get_template
    from ..model.load import load_tokenizer, resolve_model_path
    from ..train.arguments import training_dtype

    cfg = load_config(None, train_overrides(w, Path("unused"), dtype=dtype))
    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    template = get_template(cfg.model.template, tokenizer, cfg.model.default_system)
    return load_data(cfg, tokenizer, template).train, path, training_dtype(cfg)


def trained_tokens(lengths: list[int], batch: int, steps: int) -> int:
    """Real tokens in the first ``steps`` batches of a sequential sampler (epochs repeat)."""
    per_epoch = [lengths[i:i + batch] for i in range(0, len(lengths), batch)]
    return sum(sum(per_epoch[s % len(per_epoch)]) for s in range(steps))


def total_steps(rows: int, batch: int, epochs: float, steps: int) -> int:
    full = int(-(-rows // batch) * epochs)
    return min(steps, full) if steps > 0 else full


def prepare(w: Workload, out: Path, steps: int = 0, grad_ckpt: bool | None = None,
            dtype: str = "auto") -> dict:
    """Write rows.jsonl, the LLaMA-Factory dataset dir and spec.json under ``out``."""
    if w.stage != "sft":  # preference pairs (W4): their own rows and dataset entry
        from .prepare_pairs import prepare_pairs

        return prepare_pairs(w, out, steps, grad_ckpt, dtype)
    out.mkdir(parents=True, exist_ok=True)
    examples, model_path, dtype = tokenized_examples(w, dtype)
    rows_path = out / "rows.jsonl"
    with rows_path.open("w", encoding="utf-8") as fh:
        for e in examples:
            fh.write(json.dumps({"input_ids": e.input_ids, "labels": e.labels}) + "\n")
    lf_dir = out / "lf_data"
    lf_dir.mkdir(exist_ok=True)
    raw = json.loads(w.path.read_text(encoding="utf-8"))
    (lf_dir / "data.json").write_text(json.dumps(_substitute(raw, w.placeholders)), encoding="utf-8")
    fmt = "sharegpt" if raw and "conversations" in raw[0] else "alpaca"
    (lf_dir / "dataset_info.json").write_text(json.dumps(
        {"bench": {"file_name": "data.json", "formatting": fmt}}), encoding="utf-8")
    lengths = [len(e.input_ids) for e in examples]
    n_steps = total_steps(len(examples), SHARED["batch"], w.epochs, steps)
    spec = {"workload": w.name, "model": str(model_path), "rows": str(rows_path),
            "lf_dataset_dir": str(lf_dir), "default_system": SMOLLM2_SYSTEM,
            "n_rows": len(examples), "cutoff_len": w.cutoff_len, "epochs": w.epochs,
            "max_steps": steps if steps > 0 else -1, "steps": n_steps,
            "tokens": trained_tokens(lengths, SHARED["batch"], n_steps),
            "label_tokens": sum(sum(x != -100 for x in e.labels) for e in examples),
            "dtype": dtype, "gradient_checkpointing": grad_ckpt,
            "lora_rank": SHARED["lora_rank"], "lora_alpha": SHARED["lora_alpha"],
            "batch": SHARED["batch"], "learning_rate": SHARED["learning_rate"],
            "lr_scheduler_type": SHARED["lr_scheduler_type"], "seed": SHARED["seed"]}
    (out / "spec.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return spec
