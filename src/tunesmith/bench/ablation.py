"""``tunesmith bench speed``: which speed technique pays, measured A/B in one process.

Each variant trains the same batches of a workload (bundled model, LoRA r=8 all-linear) for a
few optimizer steps; variants are interleaved round by round so a noisy neighbour hits them alike,
and the median CPU time per step of each variant is reported with its speed-up over the first (the peers'
setting: padded batches, logits everywhere, gradient checkpointing) in the automatic dtype;
the last variant shows what fp32 weights would cost on this CPU.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    dtype: str  # "fp32" | "bf16"
    packing: bool
    fast_loss: bool
    checkpointing: bool | str  # True: full, "selective" (model/checkpointing.py), False: off
    attn: str = "sdpa"
    autocast: bool = False  # bf16 autocast, adapters fed bf16 inputs (only with bf16 weights)
    compile: bool = False  # torch_compile: decoder layers compiled (train/compile.py)
    fused_lora: bool = False  # LoRA layers fused (methods/lora_fused.py)


# Each variant adds one technique to the one before it (the last three: selective checkpointing,
# none, and the baseline with fp32 weights), so every step's gain is visible.
VARIANTS = {
    "padded": Variant("padded, full logits, sdpa, ckpt (peers' setting)", "auto", False, False, True),
    "pack": Variant("+ packing", "auto", True, False, True),
    "pack+fast": Variant("+ labelled-only fused loss", "auto", True, True, True),
    "hybrid": Variant("+ hybrid attention", "auto", True, True, True, "hybrid"),
    "autocast": Variant("+ bf16 autocast adapters", "auto", True, True, True, "hybrid", True),
    "fused": Variant("+ fused LoRA layers", "auto", True, True, True, "hybrid", True,
                     fused_lora=True),
    "selective": Variant("all of it, selective ckpt", "auto", True, True, "selective", "hybrid",
                         True, fused_lora=True),
    "no-ckpt": Variant("all of it, no ckpt", "auto", True, True, False, "hybrid", True,
                       fused_lora=True),
    "fp32": Variant("padded, full logits, ckpt, fp32 weights", "fp32", False, False, True),
    # the dtype question on its own: everything above, in each weight dtype (not in the default
    # list: the automatic dtype already shows in the rows above)
    "all-fp32": Variant("all of it with ckpt, fp32 weights", "fp32", True, True, True, "hybrid"),
    "all-bf16": Variant("all of it with ckpt, bf16 weights + autocast", "bf16", True, True, True,
                        "hybrid", True),
    "all-bf16-compiled": Variant("all of it with ckpt, bf16 + autocast, layers compiled", "bf16",
                                 True, True, True, "hybrid", True, True),
    "all-fp32-compiled": Variant("all of it with ckpt, fp32, layers compiled", "fp32", True,
                                 True, True, "hybrid", False, True),
}
DEFAULT = ("padded", "pack", "pack+fast", "hybrid", "autocast", "fused", "selective", "no-ckpt",
           "fp32")


def workload_examples(workload: str, n_rows: int):
    """The first ``n_rows`` tokenized examples of a workload, and the tokenizer."""
    from ..config import load_config
    from ..data.load import load_data
    from ..data.templates import get_template
    from ..model.load import load_tokenizer, resolve_model_path
    from .workloads import get_workload, train_overrides

    w = get_workload(workload)
    cfg = load_config(None, train_overrides(w, "/tmp/unused"))
    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    template = get_template(cfg.model.template, tokenizer, cfg.model.default_system)
    return load_data(cfg, tokenizer, template).train[:n_rows], tokenizer, path


def _model(path, variant: Variant):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ..hardware import torch_dtype

    from ..model.load import attn_implementation

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype(variant.dtype),
                                                 attn_implementation=attn_implementation(variant.attn))
    model.config.use_cache = False
    if variant.checkpointing:
        from ..model.checkpointing import checkpoint_mode, enable_checkpointing

        enable_checkpointing(model, checkpoint_mode(variant.checkpointing))
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    if variant.fused_lora:
        from ..methods.lora_fused import enable_fused_lora

        enable_fused_lora(model)
    model.train()
    if variant.compile:
        from ..train.compile import compile_layers

        compile_layers(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    return model, opt


def _step(model, opt, batch, fast: bool, autocast: bool = False) -> float:
    """CPU seconds of one optimizer step (process time: robust to other load on a shared
    machine, where wall time swings 2x; with torch's threads busy it tracks wall time)."""
    from ..train.fast_loss import labelled_loss
    from ..train.model import forward_backward

    start = time.process_time()
    forward_backward(model, lambda: labelled_loss(model, batch) if fast else model(**batch).loss,
                     autocast)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.process_time() - start


def run_ablation(workload: str = "W2", steps: int = 3, batch_size: int = 8, rounds: int = 1,
                 names: list[str] | None = None, threads: int | None = None) -> list[dict]:
    """Median CPU seconds per step for each variant (interleaved rounds) and the speed-up.

    ``threads=1`` makes CPU time an exact measure of work on an oversubscribed machine (with
    several threads, OpenMP barriers spin while a descheduled partner thread waits, which
    inflates CPU time under load)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from ..data.collate import PadCollator
    from ..data.packing import PackingCollator

    examples, tokenizer, path = workload_examples(workload, steps * batch_size)
    feats = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    chunks = [feats[i:i + batch_size] for i in range(0, len(feats), batch_size)]
    chosen = {k: VARIANTS[k] for k in (names or DEFAULT)}
    times: dict[str, list[float]] = {k: [] for k in chosen}
    for _ in range(rounds):
        for key, v in chosen.items():
            collate = PackingCollator(tokenizer.pad_token_id) if v.packing else PadCollator(
                tokenizer.pad_token_id)
            model, opt = _model(path, v)
            autocast = v.autocast and next(model.parameters()).dtype == torch.bfloat16
            measured = [_step(model, opt, collate(c), v.fast_loss, autocast) for c in chunks]
            times[key] += measured[1:] or measured  # the first step pays kernel set-up
            del model, opt
    tokens = sum(len(f["input_ids"]) for f in feats) / len(chunks)
    base = statistics.median(times[next(iter(chosen))])
    return [{"variant": k, "setting": v.name, "median_step_cpu_s": round(statistics.median(times[k]), 3),
             "tokens_per_s": round(tokens / statistics.median(times[k]), 1),
             "speedup": round(base / statistics.median(times[k]), 2)} for k, v in chosen.items()]


def format_ablation(rows: list[dict]) -> str:
    lines = ["| variant | setting | median CPU s/step | real tok per CPU s | speed-up |", "|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['setting']} | {r['median_step_cpu_s']} | {r['tokens_per_s']} | "
              f"{r['speedup']}x |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    result = run_ablation(sys.argv[1] if len(sys.argv) > 1 else "W2",
                          threads=int(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(format_ablation(result))
    print(json.dumps(result))
