"""Verify an export: the merged model must answer like the adapter model it came from.

Two comparisons on a probe conversation rendered with the training template:

1. ``merge``: merged model (in memory, fp32) vs base + adapter (fp32): max |logit difference|
   must be within ``tolerance`` (float rounding only; a wrong merge is off by whole units).
2. ``saved``: every tensor of the exported files, loaded back, must equal the merged model's
   tensor cast to the export dtype, bit for bit (the files hold exactly what was checked).

The logit drift of the saved model from base + adapter (fp32) is reported too, with top-1
agreement: ~1e-6 in fp32, larger in bf16/fp16 (rounding of the weights).
"""

from __future__ import annotations

import torch

PROBE = [{"role": "user", "content": "Hello! Who are you, and what can you do?"},
         {"role": "assistant", "content": "I am an assistant. I can answer questions."}]


def probe_ids(tokenizer, template) -> torch.Tensor:
    """The probe conversation as ids, shape (1, T)."""
    text = template.render(tokenizer, PROBE)
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])


@torch.inference_mode()
def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    """fp32 logits (1, T, V) on CPU."""
    return model(input_ids=ids.to(model.device)).logits.float().cpu()


def tolerance(reference: torch.Tensor) -> float:
    """Allowed fp32 merge error: 1e-4 of the largest logit (at least 1e-4)."""
    return 1e-4 * max(1.0, float(reference.abs().max()))


def compare(reference: torch.Tensor, other: torch.Tensor) -> dict:
    """Max/mean absolute difference and top-1 agreement over positions."""
    diff = (reference - other).abs()
    top1 = (reference.argmax(-1) == other.argmax(-1)).float().mean()
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "top1_agreement": round(float(top1), 6)}


def compare_tensors(expected: dict, loaded: dict) -> dict:
    """Bitwise comparison of the merged state dict with the one loaded back from the files."""
    missing = [k for k in expected if k not in loaded]
    differ = [k for k in expected if k in loaded
              and not torch.equal(expected[k].cpu(), loaded[k].to(expected[k].dtype).cpu())]
    return {"tensors": len(expected), "missing": missing[:5], "different": differ[:5],
            "passed": not missing and not differ}


def build_report(adapter_logits, merged_logits, saved_tensors: dict, saved_logits,
                 dtype: str) -> dict:
    """The ``export_check.json`` content; ``passed`` is what the export depends on."""
    merge = {**compare(adapter_logits, merged_logits), "tolerance": tolerance(adapter_logits)}
    merge["passed"] = merge["max_abs_diff"] <= merge["tolerance"]
    drift = compare(adapter_logits, saved_logits)
    return {"probe_tokens": int(adapter_logits.shape[1]), "merge": merge, "saved": saved_tensors,
            f"saved_{dtype}_vs_adapter": drift,
            "passed": bool(merge["passed"] and saved_tensors["passed"])}
