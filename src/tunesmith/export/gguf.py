"""``export_format: gguf``: one GGUF file per ``export_quantization`` for llama.cpp, Ollama and
LM Studio, plus an Ollama ``Modelfile``.

transformers reads GGUF but cannot write it, so files are built with gguf-py's ``GGUFWriter``
the way llama.cpp's ``convert_hf_to_gguf.py`` lays them out (``gguf_arch``: tensor names, the
Q/K permutation, rope; ``gguf_tokenizer``: vocabulary, special tokens, chat template). Tensors
are streamed: each is converted, written and dropped, so a file never sits whole in memory.
K-quants are made by llama.cpp's own quantizer from an unquantized file (``gguf_quant``).
Everything is refused before any work when the architecture, rope scaling or a quantization
cannot be written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import require
from .formats import register_exporter
from .gguf_arch import arch_of, gguf_tensors, write_header
from .gguf_quant import Quant, plan, quantize_with_llama_cpp, tensor_type
from .gguf_tokenizer import write_vocab
from .ollama import write_modelfile

if TYPE_CHECKING:
    from ..config import RunConfig


def _gguf():
    return require("gguf", "gguf", "export_format: gguf")


def file_name(stem: str, quant: Quant) -> str:
    return f"{stem}.{quant.name}.gguf"


def gguf_files(out_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(out_dir).glob("*.gguf"))


def check_gguf_request(cfg: RunConfig) -> None:
    """Refuse an unknown or unavailable quantization, and an architecture or rope scaling we
    cannot write, before any weights are loaded (only the model's config.json is read)."""
    from transformers import AutoConfig

    from ..hardware import resolve_dtype
    from ..model.load import resolve_model_path

    dtype = "fp32" if cfg.infer.export_dtype == "auto" else resolve_dtype(cfg.infer.export_dtype)
    plan(cfg.infer.export_quantization, dtype)
    path = resolve_model_path(cfg.model.model_name_or_path, quiet=True, model_cfg=cfg.model)
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError):
        return  # the model loader explains it (custom code, broken config)
    arch_of(config)


def load_gguf(out_dir: Path, dtype: str, device):
    """The first GGUF file read back by transformers (``gguf_file=``)."""
    from transformers import AutoModelForCausalLM

    from ..hardware import torch_dtype

    model = AutoModelForCausalLM.from_pretrained(str(out_dir), gguf_file=gguf_files(out_dir)[0],
                                                 dtype=torch_dtype(dtype))
    return model.to(device).eval()


def _output_name(config) -> str:
    return "token_embd.weight" if config.tie_word_embeddings else "output.weight"


def write_gguf(path: Path, quant: Quant, model, tokenizer, template, name: str) -> None:
    """One GGUF file: header, vocabulary, then every tensor in ``quant``'s types (streamed)."""
    g = _gguf()
    arch = arch_of(model.config)
    writer = g.GGUFWriter(str(path), arch.gguf_name)
    write_header(writer, model.config, name, int(g.LlamaFileType[quant.file_type]),
                 g.GGML_QUANT_VERSION)
    source = Path(getattr(model.config, "_name_or_path", "") or ".")
    write_vocab(writer, tokenizer, template, model.config.vocab_size,
                source if source.is_dir() else None)
    output = _output_name(model.config)
    types = {}
    for gname, _, data in gguf_tensors(model, arch):
        types[gname] = tensor_type(quant, gname, data.shape, gname == output)
        block, size = g.GGML_QUANT_SIZES[types[gname]]
        writer.add_tensor_info(gname, data.shape, np.dtype(np.float32), data.size // block * size,
                               raw_dtype=types[gname])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for gname, _, data in gguf_tensors(model, arch):
        writer.write_tensor_data(g.quants.quantize(data, types[gname]))
    writer.close()


def _source_for_llama_cpp(done: dict[str, Path], dtype: str) -> str | None:
    """An unquantized file already written for llama.cpp to quantize from: f32, else the
    model's own dtype, else f16 (more mantissa than bf16 for weights in its range)."""
    from .gguf_quant import DTYPE_QUANT

    return next((q for q in ("f32", DTYPE_QUANT[dtype], "f16", "bf16") if q in done), None)


def verify_gguf_export(out_dir: Path, files: list[str], model, ids, merged_logits):
    """The export check for GGUF files (see ``gguf_check``): saved report, logits, details."""
    from .gguf_check import verify_gguf

    result = verify_gguf(out_dir, files, model, ids, merged_logits)
    return result["saved"], result["logits"], {"gguf_files": result["files"],
                                                "gguf_logits_by": result["logits_by"]}


@register_exporter("gguf", load_gguf, check=check_gguf_request, verify=verify_gguf_export)
def save_gguf(model, tokenizer, template, out_dir: Path, cfg: RunConfig) -> list[str]:
    """Write ``<export_dir name>.<quantization>.gguf`` for each ``export_quantization`` (default:
    one unquantized file in the export dtype) into ``out_dir``; returns the file names."""
    from ..hardware import resolve_dtype

    arch_of(model.config)  # refuses before any file is opened
    dtype = resolve_dtype(str(model.dtype).replace("torch.", ""))
    quants = plan(cfg.infer.export_quantization, dtype)
    stem = Path(cfg.infer.export_dir).name
    done: dict[str, Path] = {}
    for quant in [q for q in quants if not q.by_llama_cpp]:
        done[quant.name] = out_dir / file_name(stem, quant)
        write_gguf(done[quant.name], quant, model, tokenizer, template, stem)
    llama_quants = [q for q in quants if q.by_llama_cpp]
    if llama_quants:
        _quantize_all(llama_quants, done, model, tokenizer, template, out_dir, stem, dtype)
    files = [file_name(stem, q) for q in quants]
    write_modelfile(out_dir, files[0], tokenizer, template, cfg)
    return files + ["Modelfile"]


def _quantize_all(quants, done, model, tokenizer, template, out_dir: Path, stem: str, dtype: str):
    """K-quants by llama.cpp, from an unquantized file of this export or a temporary one."""
    from .gguf_quant import DTYPE_QUANT, QUANTS

    source_name = _source_for_llama_cpp(done, dtype)
    temporary = source_name is None
    if temporary:  # a hidden file in the temp export dir, removed below (or with the dir)
        source = out_dir / f".source.{DTYPE_QUANT[dtype]}.gguf"
        write_gguf(source, QUANTS.get(DTYPE_QUANT[dtype]), model, tokenizer, template, stem)
    else:
        source = done[source_name]
    try:
        for quant in quants:
            quantize_with_llama_cpp(source, out_dir / file_name(stem, quant), quant)
    finally:
        if temporary:
            source.unlink(missing_ok=True)
