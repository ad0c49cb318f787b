"""Verify GGUF files: the bytes hold what was meant, and llama.cpp answers like the merged model.

1. ``saved``: every file is read back (``gguf_read``): each tensor must be there
   with its shape; float tensors (F32/F16/BF16) must equal the merged weights rounded to that
   type bit for bit; quantized ones (ours or llama.cpp's) are dequantized on a sample of rows and
   their relative RMS error must stay below ``MAX_QUANT_ERROR`` (a wrong layout or permutation
   gives ~1.4; 4-bit quantization ~0.1).
2. Logits: when llama.cpp is installed (``llama-cpp-python``), each file runs the probe
   conversation in llama.cpp itself, the program people run these files in; top-1 agreement
   and logit differences against the merged model are reported per file. Without it the first
   file is read back by transformers instead.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from .check import compare
from .gguf_arch import arch_of, gguf_tensors
from .gguf_quant import QUANTS, fallback_note, llama_cpp_available
from .gguf_read import read_tensors

MAX_QUANT_ERROR = 0.3
SAMPLE_ROWS = 64  # rows of each quantized matrix dequantized and compared
FLOAT_TYPES = ("F32", "F16", "BF16")


def _quant_of(name: str):
    return QUANTS.get(name.rsplit(".", 2)[-2])


def compare_file(path: Path, model) -> dict:
    """Tensor-by-tensor comparison of one GGUF file with the merged model."""
    held = {t.name: t for t in read_tensors(path)}
    expected = list(gguf_tensors(model, arch_of(model.config)))
    missing = [n for n, _, _ in expected if n not in held]
    different, worst = [], 0.0
    for name, _, data in expected:
        got = held.get(name)
        if got is None:
            continue
        if got.shape != data.shape:
            different.append(name)
        elif got.type.name in FLOAT_TYPES:
            if not np.array_equal(_as_float(got), _cast(data, got.type.name)):
                different.append(name)
        else:
            worst = max(worst, _relative_error(data, got))
    passed = not missing and not different and worst <= MAX_QUANT_ERROR
    counts = dict(Counter(t.type.name for t in held.values()).most_common())
    return {"tensors": len(expected), "missing": missing[:5], "different": different[:5],
            "max_relative_error": round(worst, 6), "types": counts,
            "note": fallback_note(_quant_of(path.name), model, counts), "passed": passed}


def _as_float(got) -> np.ndarray:
    """A float tensor of the file as float32, flat (BF16 is the top half of a float32)."""
    raw = got.data.reshape(-1)
    if got.type.name == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return raw.view(np.float16 if got.type.name == "F16" else np.float32).astype(np.float32)


def _cast(data: np.ndarray, type_name: str) -> np.ndarray:
    """The merged weight rounded to the file's float type, as float32 (flat)."""
    if type_name == "BF16":
        return torch.from_numpy(np.ascontiguousarray(data)).to(torch.bfloat16).float().numpy().reshape(-1)
    return data.astype(np.float16 if type_name == "F16" else np.float32).astype(np.float32).reshape(-1)


def _relative_error(data: np.ndarray, got, rows: int = SAMPLE_ROWS) -> float:
    """RMS error of the first ``rows`` rows, relative to their RMS (quantization error ~0.01-0.1;
    a wrong layout ~1.4). A sample keeps the check fast; layouts are per row."""
    import gguf

    restored = gguf.quants.dequantize(got.data[:rows], got.type).reshape(-1, data.shape[-1])
    want = data.reshape(-1, data.shape[-1])[: restored.shape[0]]
    return float(np.sqrt(np.mean((restored - want) ** 2) / max(np.mean(want ** 2), 1e-30)))


def llama_cpp_logits(path: Path, ids: list[int], threads: int | None = None) -> np.ndarray:
    """llama.cpp's logits for every position of ``ids`` (T, V), from the file at ``path``."""
    import llama_cpp

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    llm = llama_cpp.Llama(str(path), n_ctx=max(64, len(ids) + 8), logits_all=True,
                          verbose=False, n_threads=threads, n_batch=max(64, len(ids)))
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()


def _transformers_logits(path: Path, ids: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    from .check import logits_of

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                 dtype=torch.float32)
    return logits_of(model.eval(), ids)


def verify_gguf(out_dir: Path, files: list[str], model, ids: torch.Tensor, merged_logits) -> dict:
    """The ``saved`` section and logits of the export check for GGUF files.

    Returns:
        ``{"saved": {...}, "logits": first file's logits (1, T, V), "files": per-file details}``
    """
    paths = [Path(out_dir) / f for f in files if f.endswith(".gguf")]
    per_file = {p.name: compare_file(p, model) for p in paths}
    engine = "llama.cpp" if llama_cpp_available() else "transformers"
    first_logits = None
    for path in paths:
        if engine == "llama.cpp":
            logits = torch.from_numpy(llama_cpp_logits(path, ids[0].tolist()))[None]
        elif first_logits is None:
            logits = _transformers_logits(path, ids)
        else:
            continue
        per_file[path.name][f"{engine}_vs_merged"] = compare(merged_logits, logits)
        first_logits = logits if first_logits is None else first_logits
    saved = {"tensors": sum(f["tensors"] for f in per_file.values()),
             "missing": [m for f in per_file.values() for m in f["missing"]][:5],
             "different": [d for f in per_file.values() for d in f["different"]][:5],
             "passed": all(f["passed"] for f in per_file.values())}
    return {"saved": saved, "logits": first_logits, "files": per_file, "logits_by": engine}
