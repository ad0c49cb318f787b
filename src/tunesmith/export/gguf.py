"""``export_format: gguf``: one GGUF file for llama.cpp (Llama-architecture models only).

transformers reads GGUF but cannot write it, so the file is built with gguf-py's ``GGUFWriter``
the way llama.cpp's ``convert_hf_to_gguf.py`` lays out a Llama: its tensor names, Q/K weights
permuted to llama.cpp's rotary layout (transformers' GGUF loader undoes this), 1-D norms in F32,
the byte-level BPE vocabulary with token types, merges, special token ids and the chat template.
Weights are written unquantized (F32, F16 or BF16, from ``export_dtype``); quantize afterwards
with llama.cpp's ``llama-quantize`` if needed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, require
from .formats import end_of_turn_ids, prepare_tokenizer, register_exporter

if TYPE_CHECKING:
    from ..config import RunConfig


FILE_TYPES = {"fp32": ("F32", 0), "fp16": ("F16", 1), "bf16": ("BF16", 32)}  # LlamaFileType


def _gguf():
    return require("gguf", "gguf", "export_format: gguf")


def gguf_name(out_dir: Path) -> str:
    return next(p.name for p in out_dir.glob("*.gguf"))


def load_gguf(out_dir: Path, dtype: str, device):
    """The exported file read back by transformers (``gguf_file=``), for the export check."""
    from transformers import AutoModelForCausalLM

    from ..hardware import torch_dtype

    model = AutoModelForCausalLM.from_pretrained(str(out_dir), gguf_file=gguf_name(out_dir),
                                                 dtype=torch_dtype(dtype))
    return model.to(device).eval()


def permute_rotary(weight, n_head: int):
    """HF's rotary layout (halves) -> llama.cpp's (interleaved pairs), per head. (out, in)"""
    out = weight.shape[0]
    return weight.reshape(n_head, 2, out // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _write_header(writer, config, dtype: str, name: str) -> None:
    g = _gguf()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_file_type(FILE_TYPES[dtype][1])
    writer.add_quantization_version(g.GGML_QUANT_VERSION)


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    if params.get("rope_type", "default") not in ("default", None):
        raise ConfigError(f"export_format: gguf: rope scaling '{params['rope_type']}' is not "
                          "supported by this exporter; use export_format: safetensors")
    return params.get("rope_theta", getattr(config, "rope_theta", 10000.0))


def _write_vocab(writer, tokenizer, template, vocab_size: int, pre: str) -> None:
    """Byte-level BPE tokens (id order), token types, merges, special ids, chat template."""
    g = _gguf()
    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {i: tok for i, tok in tokenizer.added_tokens_decoder.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(g.TokenType.UNUSED)
        else:
            tokens.append(reverse[i])
            types.append(g.TokenType.NORMAL if i not in added else
                         g.TokenType.CONTROL if added[i].special else g.TokenType.USER_DEFINED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory() as tmp:
        prepare_tokenizer(tokenizer, template).save_pretrained(tmp)
        special = g.SpecialVocab(tmp, load_merges=True, n_vocab=vocab_size)
        special.chat_template = None  # set below from the training template
        special.add_to_gguf(writer, quiet=True)
    turn_end = [i for i in end_of_turn_ids(tokenizer, template) if i != tokenizer.eos_token_id]
    writer.add_eot_token_id(turn_end[0] if turn_end else tokenizer.eos_token_id)
    writer.add_add_bos_token(False)  # the chat template writes any BOS itself
    writer.add_chat_template(tokenizer.chat_template or "")


def _write_tensors(writer, model, dtype: str) -> None:
    import numpy as np

    g = _gguf()
    config = model.config
    names = g.TensorNameMap(g.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    qtype = getattr(g.GGMLQuantizationType, FILE_TYPES[dtype][0])
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reuses token_embd
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConfigError(f"export_format: gguf: no llama.cpp name for tensor '{hf_name}'")
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = permute_rotary(data, config.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            data = permute_rotary(data, config.num_key_value_heads)
        if data.ndim == 1:
            writer.add_tensor(name, data.astype(np.float32))
        else:
            writer.add_tensor(name, g.quants.quantize(data, qtype), raw_dtype=qtype)


def _pre_tokenizer(tokenizer) -> str:
    """llama.cpp's name for the pre-tokenizer regex. llama.cpp recognises it by hashing the
    tokenizer's output on a probe text; we only know the bundled SmolLM2 family's (``smollm``),
    anything else gets ``default`` (llama.cpp then warns and uses the GPT-2 regex)."""
    vocab = tokenizer.get_vocab()
    return "smollm" if vocab.get("<|im_start|>") == 1 and vocab.get("<|im_end|>") == 2 else "default"


@register_exporter("gguf", load_gguf)
def save_gguf(model, tokenizer, template, out_dir: Path, cfg: RunConfig) -> list[str]:
    """Write ``<export_dir name>.<dtype>.gguf`` into ``out_dir``."""
    from ..hardware import resolve_dtype

    if model.config.model_type != "llama":
        raise ConfigError(f"export_format: gguf supports Llama-architecture models; this is "
                          f"'{model.config.model_type}': use export_format: safetensors and "
                          "llama.cpp's convert_hf_to_gguf.py")
    dtype = resolve_dtype(str(model.dtype).replace("torch.", ""))
    stem = Path(cfg.infer.export_dir).name
    path = out_dir / f"{stem}.{FILE_TYPES[dtype][0].lower()}.gguf"
    g = _gguf()
    writer = g.GGUFWriter(str(path), "llama")
    _write_header(writer, model.config, dtype, stem)
    _write_vocab(writer, tokenizer, template, model.config.vocab_size, _pre_tokenizer(tokenizer))
    _write_tensors(writer, model, dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return [path.name]
