"""How each transformers architecture is laid out in a GGUF file, as llama.cpp reads it.

The conventions are llama.cpp's (``convert_hf_to_gguf.py``): Llama and Mistral are both the
``llama`` architecture, whose Q/K weights (and biases) are permuted from HF's rotary layout
(halves) to llama.cpp's (interleaved pairs); Qwen2 (biases on q/k/v) and Qwen3 (RMS norms on
q and k) keep HF's layout because llama.cpp runs them with NEOX-style rotary. Rope scaling:
``linear`` and ``yarn`` are header keys, ``llama3`` is a ``rope_freqs`` tensor of per-dimension
factors; anything else is refused before any work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class Arch:
    """One transformers ``model_type`` as written to GGUF.

    Args:
        gguf_name: llama.cpp's architecture name (``general.architecture``).
        permute_qk: Q/K rows go from HF's rotary halves to llama.cpp's interleaved pairs.
    """

    gguf_name: str
    permute_qk: bool


ARCHS: Registry[Arch] = Registry("architecture", key="export_format: gguf")
ARCHS.add("llama", Arch("llama", permute_qk=True))    # SmolLM2, DeepSeek-LLM, Yi, Llama 2/3
ARCHS.add("mistral", Arch("llama", permute_qk=True))  # llama.cpp runs Mistral as llama
ARCHS.add("qwen2", Arch("qwen2", permute_qk=False))   # Qwen1.5/2/2.5, R1-Distill-Qwen
ARCHS.add("qwen3", Arch("qwen3", permute_qk=False))   # q_norm / k_norm per head

ROPE_TYPES = ("default", "linear", "yarn", "llama3")


def arch_of(config) -> Arch:
    """The GGUF layout for ``config.model_type``.

    Raises:
        ConfigError: an architecture or rope scaling this exporter cannot write (one line,
            naming what it can).
    """
    model_type = config.model_type
    if model_type not in ARCHS:
        raise ConfigError(f"export_format: gguf cannot write '{model_type}' models; it writes "
                          f"{', '.join(ARCHS.names())} (use export_format: safetensors for others)")
    rope = rope_parameters(config)
    if rope.get("rope_type", "default") not in ROPE_TYPES:
        raise ConfigError(f"export_format: gguf: rope scaling '{rope['rope_type']}' of this "
                          f"{model_type} model cannot be written; known: {', '.join(ROPE_TYPES)}")
    return ARCHS.get(model_type)


def rope_parameters(config) -> dict:
    """transformers 5's ``rope_parameters`` (older configs: ``rope_theta`` + ``rope_scaling``)."""
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    if "rope_type" not in params and "type" in params:
        params["rope_type"] = params["type"]
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params.setdefault("rope_type", "default")
    return params


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def write_header(writer, config, name: str, file_type: int, quant_version: int) -> None:
    """Hyperparameters under ``<arch>.*``: sizes, heads, norms, rope, file type."""
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim(config))
    writer.add_key_length(head_dim(config))  # explicit: Mistral/Qwen3 heads need not be hidden/heads
    writer.add_value_length(head_dim(config))
    _write_rope(writer, rope_parameters(config))
    writer.add_file_type(file_type)
    writer.add_quantization_version(quant_version)


def _write_rope(writer, rope: dict) -> None:
    import gguf

    writer.add_rope_freq_base(float(rope["rope_theta"]))
    kind = rope["rope_type"]
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))


def llama3_rope_factors(config) -> np.ndarray:
    """Per-dimension frequency divisors of Llama 3.1's rope scaling (llama.cpp: ``rope_freqs``)."""
    rope = rope_parameters(config)
    dim = head_dim(config)
    freqs = 1.0 / (rope["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    factor, old_ctx = rope.get("factor", 8.0), rope.get("original_max_position_embeddings", 8192)
    low_wavelen = old_ctx / rope.get("low_freq_factor", 1.0)
    high_wavelen = old_ctx / rope.get("high_freq_factor", 4.0)
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:  # smooth interpolation between the two regimes
            smooth = (old_ctx / wavelen - rope.get("low_freq_factor", 1.0)) / (
                rope.get("high_freq_factor", 4.0) - rope.get("low_freq_factor", 1.0))
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def permute_rotary(weight: np.ndarray, n_head: int) -> np.ndarray:
    """HF's rotary layout (halves) -> llama.cpp's (interleaved pairs), per head. (out, ...)"""
    out = weight.shape[0]
    return (weight.reshape(n_head, 2, out // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def unpermute_rotary(weight: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of ``permute_rotary`` (for reading a file back)."""
    out = weight.shape[0]
    return (weight.reshape(n_head, out // n_head // 2, 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def qk_heads(hf_name: str, config) -> int | None:
    """Heads to permute over for a Q or K projection (weight or bias), else None."""
    if ".q_proj." in hf_name:
        return config.num_attention_heads
    if ".k_proj." in hf_name:
        return config.num_key_value_heads or config.num_attention_heads
    return None


def gguf_tensors(model, arch: Arch) -> Iterator[tuple[str, str, np.ndarray]]:
    """``(gguf name, hf name, float32 array)`` for every tensor llama.cpp needs, in file order.

    The tied LM head is left out (llama.cpp reuses ``token_embd``); Llama 3 rope scaling adds
    ``rope_freqs``. An HF tensor with no llama.cpp name is refused.
    """
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.gguf_name.upper()], config.num_hidden_layers)
    if rope_parameters(config)["rope_type"] == "llama3":
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", "", llama3_rope_factors(config)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConfigError(f"export_format: gguf: no llama.cpp name for tensor '{hf_name}' "
                              f"of this {config.model_type} model")
        data = tensor.detach().float().cpu().numpy()
        heads = qk_heads(hf_name, config) if arch.permute_qk else None
        yield name, hf_name, permute_rotary(data, heads) if heads else data
