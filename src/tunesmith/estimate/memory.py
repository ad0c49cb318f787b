"""Memory before training: parameters from a meta-device model, bytes from simple formulas.

Weights, gradients and AdamW states follow from the parameter counts and dtypes (PEFT keeps
adapter weights in fp32). Activations scale with the tokens of the largest batch and with the
layer shapes. The coefficients were fitted on two measured peaks of the bundled model (W1 with
and without gradient checkpointing / labelled-only loss) and checked on a third (docs/
performance.md): with a frozen base, autograd keeps far fewer tensors than full fine-tuning
(a frozen linear needs no saved input), about ``A_HIDDEN`` hidden-size plus ``A_INTER``
intermediate-size values per token per layer; with gradient checkpointing only each layer's
input stays, plus one layer's set during its recompute. On CPU the process itself (Python,
torch, transformers, peft, tokenizers) is resident before the model loads: ``RUNTIME_MB``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MIB = 2**20
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
A_HIDDEN = 3  # saved hidden-size values per token per layer (fitted, see module doc)
A_INTER = 1  # saved intermediate-size values per token per layer (fitted)
LOGIT_COPIES = 3  # logits, their fp32 copy / softmax, and its gradient
FUSED_COPIES = 2  # the fused head loss: one chunk's logits and their fp32 softmax
RUNTIME_MB = 800  # `tunesmith train`'s resident size before the model loads (measured)
CUDA_CONTEXT_MB = 500


@dataclass
class ParamCounts:
    total: int
    trainable: int
    frozen_dtype: str
    trainable_bytes: int  # bytes per trainable parameter
    head_fusable: bool = False  # frozen plain lm_head: the fused, chunked loss applies


@dataclass
class Shapes:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    vocab: int


@dataclass
class MemoryEstimate:
    weights_mb: float
    gradients_mb: float
    optimizer_mb: float
    activations_mb: float
    activations_ckpt_mb: float
    logits_mb: float
    overhead_mb: float
    peak_mb: float
    peak_if_ckpt_toggled_mb: float
    checkpointing: bool = False

    def as_dict(self) -> dict:
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in asdict(self).items()}


def model_shapes(config) -> Shapes:
    text = getattr(config, "text_config", None) or config
    return Shapes(text.num_hidden_layers, text.hidden_size,
                  getattr(text, "intermediate_size", 4 * text.hidden_size),
                  text.num_attention_heads, text.vocab_size)


def activation_bytes(shapes: Shapes, tokens: int, longest: int, dtype: str, ckpt: bool) -> float:
    """Saved activations for one batch of ``tokens`` tokens (rows up to ``longest`` long)."""
    b = BYTES[dtype]
    per_layer = tokens * (A_HIDDEN * shapes.hidden + A_INTER * shapes.intermediate) * b
    attention = tokens * longest * shapes.heads * b  # attention weights where sdpa keeps them
    if ckpt:
        return shapes.layers * tokens * shapes.hidden * b + per_layer + attention
    return shapes.layers * (per_layer + attention)


def logits_bytes(shapes: Shapes, positions: int, fused_chunk: int | None = None) -> float:
    """Logits memory: every position at once, or one chunk of the fused labelled-only loss."""
    if fused_chunk:
        return min(positions, fused_chunk) * shapes.vocab * 4 * FUSED_COPIES
    return positions * shapes.vocab * 4 * LOGIT_COPIES


def estimate_memory(counts: ParamCounts, shapes: Shapes, *, tokens: int, longest: int,
                    logit_positions: int, ckpt: bool, file_mb: float, device: str,
                    fused_chunk: int | None = None) -> MemoryEstimate:
    """Every term in MiB, and the expected peak (RSS on CPU, allocated memory on a GPU)."""
    frozen = counts.total - counts.trainable
    weights = frozen * BYTES[counts.frozen_dtype] + counts.trainable * counts.trainable_bytes
    grads = counts.trainable * counts.trainable_bytes
    optim = 2 * counts.trainable * counts.trainable_bytes
    act = activation_bytes(shapes, tokens, longest, counts.frozen_dtype, ckpt)
    act_other = activation_bytes(shapes, tokens, longest, counts.frozen_dtype, not ckpt)
    logits = logits_bytes(shapes, logit_positions, fused_chunk)
    overhead = RUNTIME_MB if device == "cpu" else CUDA_CONTEXT_MB  # file_mb: mmap'd, not resident
    fixed = (weights + grads + optim + logits) / MIB + overhead
    return MemoryEstimate(weights / MIB, grads / MIB, optim / MIB,
                          act / MIB if not ckpt else act_other / MIB,
                          act / MIB if ckpt else act_other / MIB, logits / MIB, overhead,
                          fixed + act / MIB, fixed + act_other / MIB, ckpt)
