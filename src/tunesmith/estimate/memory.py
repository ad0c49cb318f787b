"""Memory before training: parameters from a meta-device model, bytes from simple formulas.

Weights, gradients and AdamW states follow from the parameter counts and dtypes (PEFT keeps
adapter weights in fp32). Activations scale with the tokens of the largest batch and with the
layer shapes. What autograd saves was counted with saved-tensor hooks on the bundled model (LoRA,
bf16 autocast): about ``A_HIDDEN`` hidden-size plus ``A_INTER`` intermediate-size values per
token per layer (a frozen linear saves no input; norms keep fp32 copies; one intermediate-size
value less where the fused SwiGLU keeps no silu output, model/fused_mlp.py); the math attention
path of short rows also keeps the T x T probabilities. With gradient checkpointing only each
layer's input stays, plus one layer's set during its recompute; selective checkpointing
(model/checkpointing.py) keeps the products' outputs, about ``A_SEL_HIDDEN`` hidden-size plus
``A_SEL_INTER`` intermediate-size values (the layer input, q/k/v, attention and o/down outputs;
gate and up), plus one layer's full set during its recompute. Rows longer than the hybrid
attention's threshold go through sdpa, whose backward holds fp32 T x T buffers for one layer
(``ATTN_BWD_COPIES``). On CPU the peak is the process's resident set, which exceeds the live
tensors (gradients of activations in flight, freed blocks the allocator keeps): ``ACT_RSS``
scales the saved bytes and the standard path's logits count as ``CPU_LOGIT_COPIES`` fp32
copies; both were fitted on four measured peaks and checked on three more (docs/
performance.md). Loading converts the checkpoint's weights to the training dtype, so the peak
is never below the process plus the checkpoint file plus the converted weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..model.attention import SHORT_KV  # rows up to this long take the math attention path

MIB = 2**20
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
A_HIDDEN = 9  # saved hidden-size values per token per layer (counted, see module doc)
A_INTER = 4.5  # saved intermediate-size values per token per layer (counted)
A_SEL_HIDDEN = 6  # kept by selective checkpointing (counted from the operations it keeps)
A_SEL_INTER = 2
ATTN_BWD_COPIES = 9  # fp32 T x T values per head and token held by sdpa's backward (fitted)
ACT_RSS = 1.8  # resident bytes per saved activation byte on CPU (fitted)
LOGIT_COPIES = 3.5  # bf16 logits, their fp32 copy, log-softmax and its gradient (allocated)
CPU_LOGIT_COPIES = 1.0  # the same as resident fp32 copies at the CPU peak (fitted)
FUSED_COPIES = 2  # the fused head loss: one chunk's logits and their fp32 softmax
RUNTIME_MB = 520  # `tunesmith train`'s resident size before the model loads (measured)
CUDA_CONTEXT_MB = 500


@dataclass
class ParamCounts:
    total: int
    trainable: int
    frozen_dtype: str
    trainable_bytes: int  # bytes per trainable parameter
    head_fusable: bool = False  # frozen plain lm_head: the fused, chunked loss applies
    quantized: int = 0  # frozen parameters stored in k-bit (QLoRA's linear layers)
    quantized_bytes: float = 0.0  # bytes per quantized parameter, quantization constants included


def kbit_bytes(bits: int, double_quant: bool) -> float:
    """Bytes per parameter of a bitsandbytes k-bit weight: NF4/FP4 keep one absmax per 64
    weights (fp32, or 8-bit plus one fp32 per 256 blocks with double quantization); 8-bit keeps
    one fp32 scale per row (negligible)."""
    if bits == 8:
        return 1.0
    return 0.5 + ((1 + 4 / 256) / 64 if double_quant else 4 / 64)


@dataclass
class Shapes:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    vocab: int
    fused_swiglu: bool = False  # SwiGLU MLPs keep no silu output (model/fused_mlp.py)


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
    checkpointing: bool | str = False  # as chosen: False, True (full) or "selective"
    loading_mb: float = 0.0  # resident while the checkpoint is read and converted (CPU)
    activations_selective_mb: float = 0.0
    peak_off_mb: float = 0.0  # the expected peak in each checkpointing mode
    peak_selective_mb: float = 0.0
    peak_full_mb: float = 0.0
    pass_tokens: int = 0  # the batch runs in passes of at most this many tokens (0: in one)

    def as_dict(self) -> dict:
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in asdict(self).items()}


def model_shapes(config) -> Shapes:
    text = getattr(config, "text_config", None) or config
    return Shapes(text.num_hidden_layers, text.hidden_size,
                  getattr(text, "intermediate_size", 4 * text.hidden_size),
                  text.num_attention_heads, text.vocab_size)


def activation_bytes(shapes: Shapes, tokens: int, longest: int, dtype: str, ckpt: bool | str,
                     math_attention: bool = True) -> float:
    """Saved activations for one batch of ``tokens`` tokens (rows up to ``longest`` long).

    Args:
        ckpt: False, True (full checkpointing) or ``"selective"``.
        math_attention: short rows take the math attention path (the CPU's hybrid kernel),
            which keeps T x T probabilities; a GPU's sdpa/flash kernels keep none.
    """
    b = BYTES[dtype]
    inter = A_INTER - (1 if shapes.fused_swiglu else 0)  # silu's output, when not kept
    per_layer = tokens * (A_HIDDEN * shapes.hidden + inter * shapes.intermediate) * b
    if math_attention and longest <= SHORT_KV:  # keeps its probabilities (+ fp32 softmax input)
        per_layer += tokens * longest * shapes.heads * (b + 4)
    if ckpt == "selective":
        kept = tokens * (A_SEL_HIDDEN * shapes.hidden + A_SEL_INTER * shapes.intermediate) * b
        return shapes.layers * kept + per_layer
    if ckpt:
        return shapes.layers * tokens * shapes.hidden * b + per_layer
    return shapes.layers * per_layer


def attention_transient_bytes(shapes: Shapes, tokens: int, longest: int) -> float:
    """sdpa's backward for rows past the math path: fp32 T x T buffers of one layer."""
    return 0.0 if longest <= SHORT_KV else ATTN_BWD_COPIES * tokens * longest * shapes.heads * 4


def logits_bytes(shapes: Shapes, positions: int, fused_chunk: int | None = None,
                 copies: float = LOGIT_COPIES) -> float:
    """Logits memory: every position at once, or one chunk of the fused labelled-only loss."""
    if fused_chunk:
        return min(positions, fused_chunk) * shapes.vocab * 4 * FUSED_COPIES
    return positions * shapes.vocab * 4 * copies


def estimate_memory(counts: ParamCounts, shapes: Shapes, *, tokens: int, longest: int,
                    logit_positions: int, ckpt: bool | str, file_mb: float, device: str,
                    fused_chunk: int | None = None,
                    compute_dtype: str | None = None) -> MemoryEstimate:
    """Every term in MiB, and the expected peak (RSS on CPU, allocated memory on a GPU).

    Args:
        compute_dtype: the autocast dtype activations are kept in (default: the weights').
    """
    cpu = device == "cpu"
    frozen = counts.total - counts.trainable - counts.quantized
    weights = (frozen * BYTES[counts.frozen_dtype] + counts.quantized * counts.quantized_bytes
               + counts.trainable * counts.trainable_bytes)
    grads = counts.trainable * counts.trainable_bytes
    optim = 2 * counts.trainable * counts.trainable_bytes
    scale = ACT_RSS if cpu else 1.0
    # a GPU's fused attention kernels hold no T x T buffers (the CPU's math/sdpa paths do)
    transient = attention_transient_bytes(shapes, tokens, longest) if cpu else 0.0
    act_dtype = compute_dtype or counts.frozen_dtype  # autocast computes in 16 bits on a GPU
    act = {mode: scale * activation_bytes(shapes, tokens, longest, act_dtype, mode, cpu)
           + transient for mode in (False, "selective", True)}
    logits = logits_bytes(shapes, logit_positions, fused_chunk,
                          CPU_LOGIT_COPIES if cpu else LOGIT_COPIES)
    overhead = RUNTIME_MB if cpu else CUDA_CONTEXT_MB
    fixed = (weights + grads + optim + logits) / MIB + overhead
    # loading: the checkpoint file's pages and the converted weights are resident together
    load = overhead + file_mb + weights / MIB if cpu else 0.0
    peak = {mode: max(load, fixed + a / MIB) for mode, a in act.items()}
    ckpt = "selective" if ckpt == "selective" else bool(ckpt)
    return MemoryEstimate(weights / MIB, grads / MIB, optim / MIB, act[False] / MIB,
                          act[True] / MIB, logits / MIB, overhead, peak[ckpt],
                          peak[False] if ckpt else peak[True], ckpt, load,
                          act["selective"] / MIB, peak[False], peak["selective"], peak[True])
