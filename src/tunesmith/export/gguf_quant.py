"""``export_quantization``: which GGUF weight types a file gets, and who makes them.

The ``gguf`` package writes F32/F16/BF16/Q8_0/Q4_0 itself (numpy). It has no K-quant
quantizer, so ``q4_k_m``/``q5_k_m``/``q6_k`` are made by llama.cpp's own ``llama_model_quantize``
(through the ``llama-cpp-python`` binding) from an unquantized GGUF we write first; without the
binding they are refused before any work, naming the types this install can write.

A matrix whose rows do not split into the type's blocks (32 values; 256 for K-quants) cannot
take it: we store such a matrix as F16 (what ``convert_hf_to_gguf.py`` does); llama.cpp's
quantizer picks its own fallback per tensor (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0). The
check report lists the tensor types each file really holds.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError, ModelError
from ..registry import Registry


@dataclass(frozen=True)
class Quant:
    """One ``export_quantization`` value.

    Args:
        file_type: llama.cpp's ``general.file_type`` (``LlamaFileType`` member name).
        tensor_type: the type gguf-py writes for matrices (``GGMLQuantizationType`` name), or
            None when llama.cpp's quantizer makes the file.
        block: values per quantization block (a row must be a multiple of it).
    """

    name: str
    file_type: str
    tensor_type: str | None
    block: int
    summary: str

    @property
    def by_llama_cpp(self) -> bool:
        return self.tensor_type is None


QUANTS: Registry[Quant] = Registry("quantization", key="export_quantization")
for _q in (
    Quant("f32", "ALL_F32", "F32", 1, "32-bit floats, lossless"),
    Quant("f16", "MOSTLY_F16", "F16", 1, "16-bit floats"),
    Quant("bf16", "MOSTLY_BF16", "BF16", 1, "bfloat16"),
    Quant("q8_0", "MOSTLY_Q8_0", "Q8_0", 32, "8-bit, near lossless"),
    Quant("q4_0", "MOSTLY_Q4_0", "Q4_0", 32, "4-bit, legacy (output head in Q8_0)"),
    Quant("q4_k_m", "MOSTLY_Q4_K_M", None, 256, "4-bit K-quant mix, the usual laptop choice"),
    Quant("q5_k_m", "MOSTLY_Q5_K_M", None, 256, "5-bit K-quant mix"),
    Quant("q6_k", "MOSTLY_Q6_K", None, 256, "6-bit K-quant"),
):
    QUANTS.add(_q.name, _q)

DTYPE_QUANT = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}  # export_dtype -> default file


def llama_cpp_available() -> bool:
    """True when llama.cpp's quantizer (the ``llama_cpp`` binding) can be imported."""
    return importlib.util.find_spec("llama_cpp") is not None


def writable() -> list[str]:
    """The quantization names this install can produce."""
    return [q.name for q in QUANTS.values() if not q.by_llama_cpp or llama_cpp_available()]


def plan(names: list[str], dtype: str) -> list[Quant]:
    """The requested files in order (``[]`` -> one unquantized file in the export dtype).

    Raises:
        ConfigError: an unknown type, or a K-quant without llama.cpp (one line, naming what
            this install can write).
    """
    names = [n.strip().lower() for n in names if n.strip()] or [DTYPE_QUANT[dtype]]
    for name in names:
        if name not in QUANTS:
            raise ConfigError(f"key 'export_quantization': unknown type '{name}'; known: "
                              f"{', '.join(QUANTS.names())} (this install can write: "
                              f"{', '.join(writable())})")
        if QUANTS.get(name).by_llama_cpp and not llama_cpp_available():
            raise ConfigError(f"export_quantization: {name} is made by llama.cpp's quantizer, "
                              "which is not installed (pip install 'tunesmith[gguf]' builds "
                              f"llama-cpp-python); this install can write: {', '.join(writable())}")
    return [QUANTS.get(n) for n in dict.fromkeys(names)]


def tensor_type(quant: Quant, gguf_name: str, shape: tuple, is_output: bool):
    """The GGML type gguf-py writes one tensor in.

    1-D tensors and norms stay F32 (llama.cpp computes them in F32); a matrix whose rows are not
    a multiple of the block becomes F16; with ``q4_0`` the output head stays Q8_0, as llama.cpp
    keeps it at higher precision for its 4-bit files.
    """
    import gguf

    if len(shape) < 2 or gguf_name.endswith("_norm.weight") or quant.name == "f32":
        return gguf.GGMLQuantizationType.F32
    name = "Q8_0" if quant.name == "q4_0" and is_output else quant.tensor_type
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]][0]
    if shape[-1] % block:
        return gguf.GGMLQuantizationType.F16
    return gguf.GGMLQuantizationType[name]


def quantize_with_llama_cpp(source: Path, target: Path, quant: Quant, threads: int = 0) -> None:
    """``llama_model_quantize(source -> target)`` with llama.cpp's per-tensor choices.

    Raises:
        ModelError: llama.cpp reported a failure (its log line is on stderr).
    """
    import gguf
    import llama_cpp

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(gguf.LlamaFileType[quant.file_type])
    params.nthread = threads
    with captured_stderr() as log:  # one line per fallback tensor: summarised by fallback_note
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
        text = log.read_text(errors="replace") if code != 0 else ""
    if code != 0:
        last = [line for line in text.splitlines() if line.strip()]
        raise ModelError(f"llama.cpp could not quantize {source.name} to {quant.name} "
                         f"(code {code}): {last[-1] if last else 'no message'}")


@contextmanager
def captured_stderr() -> Iterator[Path]:
    """Send the process's stderr (file descriptor 2, where C code writes) to a temp file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stderr.txt"
        sys.stderr.flush()
        saved = os.dup(2)
        with open(path, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield path
            finally:
                os.dup2(saved, 2)
                os.close(saved)


def type_counts(path: Path) -> dict[str, int]:
    """How many tensors of each GGML type a GGUF file holds, e.g. ``{"Q4_K": 96, "F32": 61}``."""
    from .gguf_read import read_tensors

    return dict(Counter(t.type.name for t in read_tensors(path)).most_common())


def fallback_note(quant: Quant, model, counts: dict[str, int]) -> str | None:
    """One line when some matrices could not take ``quant`` (rows not a multiple of its block)."""
    rows = Counter(p.shape[-1] for n, p in model.named_parameters() if p.dim() == 2
                   and p.shape[-1] % quant.block)
    if quant.block == 1 or not rows:
        return None
    sizes = ", ".join(f"{n} values" for n in sorted(rows))
    held = ", ".join(f"{k} x{v}" for k, v in counts.items())
    return (f"{quant.name}: {sum(rows.values())} matrices have rows of {sizes}, not a multiple of "
            f"{quant.block}, so they were stored in another type (the file holds {held})")
