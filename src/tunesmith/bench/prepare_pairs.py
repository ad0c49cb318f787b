"""``bench train`` preparation for preference workloads (W4, ``stage: dpo``): the pairs tokenized
once by tunesmith, in file order, handed to every tool.

rows.jsonl holds per pair the shared prompt ids and each answer's ids (TRL's pre-tokenized
``prompt_ids``/``chosen_ids``/``rejected_ids``) and each side's full ``input_ids``/``labels``
(LLaMA-Factory's pairwise ``tokenized_path``), so the three tools train the same token sequences
with the same answer masks. Tokens counted: every token of both sides of the trained pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

from .prepare import SMOLLM2_SYSTEM, total_steps, trained_tokens
from .workloads import SHARED, Workload, train_overrides

IGNORE = -100


def pair_examples(w: Workload, dtype: str = "auto"):
    """tunesmith's (chosen, rejected) examples of the workload, the model path and dtype."""
    from ..config import load_config
    from ..data.load import load_data
    from ..model.load import load_tokenizer, resolve_model_path
    from ..train.arguments import training_dtype
    from ..train.stages import check_stage, stage_template

    cfg = load_config(None, train_overrides(w, Path("unused"), dtype=dtype))
    stage = check_stage(cfg)
    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    template = stage_template(cfg, tokenizer, stage)
    examples = load_data(cfg, tokenizer, template, kind=stage.data_kind).train
    return list(zip(examples[::2], examples[1::2])), path, training_dtype(cfg)


def _row(chosen, rejected) -> dict:
    """TRL's ids (answer = the labelled span) and both full sides."""
    def split(ex):
        marked = [i for i, lab in enumerate(ex.labels) if lab != IGNORE]
        return ex.input_ids[:marked[0]], ex.input_ids[marked[0]:marked[-1] + 1]

    (prompt, c), (_, r) = split(chosen), split(rejected)
    return {"prompt_ids": prompt, "chosen_ids": c, "rejected_ids": r,
            "chosen": {"input_ids": chosen.input_ids, "labels": chosen.labels},
            "rejected": {"input_ids": rejected.input_ids, "labels": rejected.labels}}


def prepare_pairs(w: Workload, out: Path, steps: int = 0, grad_ckpt: bool = True,
                  dtype: str = "auto") -> dict:
    """Write rows.jsonl, the LLaMA-Factory ranking dataset dir and spec.json under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    pairs, model_path, dtype = pair_examples(w, dtype)
    rows_path = out / "rows.jsonl"
    with rows_path.open("w", encoding="utf-8") as fh:
        for chosen, rejected in pairs:
            fh.write(json.dumps(_row(chosen, rejected)) + "\n")
    lf_dir = out / "lf_data"
    lf_dir.mkdir(exist_ok=True)
    (lf_dir / "data.json").write_text(w.path.read_text(encoding="utf-8"), encoding="utf-8")
    (lf_dir / "dataset_info.json").write_text(json.dumps({"bench": {
        "file_name": "data.json", "formatting": "sharegpt", "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}}),
        encoding="utf-8")
    lengths = [len(c.input_ids) + len(r.input_ids) for c, r in pairs]
    n_steps = total_steps(len(pairs), w.batch, w.epochs, steps)
    spec = {"workload": w.name, "stage": w.stage, **w.stage_keys, "model": str(model_path),
            "rows": str(rows_path), "lf_dataset_dir": str(lf_dir),
            "default_system": SMOLLM2_SYSTEM, "n_rows": len(pairs), "cutoff_len": w.cutoff_len,
            "epochs": w.epochs, "max_steps": steps if steps > 0 else -1, "steps": n_steps,
            "tokens": trained_tokens(lengths, w.batch, n_steps),
            "label_tokens": sum(sum(x != IGNORE for x in e.labels) for p in pairs for e in p),
            "dtype": dtype, "gradient_checkpointing": grad_ckpt,
            "lora_rank": SHARED["lora_rank"], "lora_alpha": SHARED["lora_alpha"],
            "batch": w.batch, "learning_rate": SHARED["learning_rate"],
            "lr_scheduler_type": SHARED["lr_scheduler_type"], "seed": SHARED["seed"]}
    (out / "spec.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return spec
