"""``hybrid`` attention: plain matmul-softmax attention for short sequences, sdpa for long ones.

On CPU, torch's fused sdpa kernel pays a fixed cost per call that dominates short sequences: for
SmolLM2's shapes (batch 8, 9 heads of 64) forward+backward takes 6.1 ms at 64 tokens where the
plain math takes 3.0, 13.9 vs 7.5 ms at 128; from about 200 tokens the fused kernel wins (19.7 vs
28.7 ms at 256, 124 vs 820 ms at 1,024, and it never materializes the T x T scores). Chat SFT rows
are often short, so on CPU ``attn_implementation: auto`` picks this kernel: up to
``SHORT_KV`` keys the math path, beyond it transformers' own sdpa function. Both receive the same
masks (transformers' sdpa mask: None for plain causal, else a boolean mask, block-diagonal for
packed rows), so the result is the same attention either way (tests/unit/test_attention.py).
"""

from __future__ import annotations

import torch
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

NAME = "hybrid"
SHORT_KV = 192  # keys up to which the math path is faster on CPU (measured, see module doc)
UPCAST_KV = 512  # keys up to which decoding multiplies a half-precision cache in fp32


def decode_attention(query, key, value, attention_mask, scale: float):
    """One new token per row (decoding): the query heads that share a key/value head are
    grouped, so the cache is read as it is -- no ``repeat_kv`` copy of every layer's keys and
    values per token, which for grouped-query models (SmolLM2: 3 of 9) reads 3x the cache.

    Up to ``UPCAST_KV`` keys a half-precision cache is multiplied in fp32: CPU half-precision
    batched matmuls of these small shapes are slower than casting first (batch 8, SmolLM2's
    heads, 64 keys: 145 vs 202 us a layer; 512 keys: 356 vs 1,032), and past ~1,000 keys the
    cast's extra traffic costs more than it saves (1,024: 2,237 vs 1,235).

    Shapes: query (B, H, 1, D), key/value (B, Hkv, S, D), mask None or (B, 1, 1, S).
    Returns (B, 1, H, D)."""
    b, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[-2]
    dtype = query.dtype
    if dtype in (torch.bfloat16, torch.float16) and length <= UPCAST_KV:
        query, key, value = query.float(), key.float(), value.float()
    q = query.reshape(b, kv_heads, heads // kv_heads, dim)  # head h reads kv head h // groups
    scores = torch.matmul(q, key.transpose(2, 3)) * scale  # (B, Hkv, G, S)
    if attention_mask is not None:
        mask = attention_mask[..., :length]
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min) if mask.dtype == torch.bool \
            else scores + mask
    upcast = torch.float32 if scores.dtype in (torch.bfloat16, torch.float16) else scores.dtype
    probs = torch.softmax(scores, dim=-1, dtype=upcast).to(value.dtype)
    out = torch.matmul(probs, value)  # (B, Hkv, G, D)
    return out.to(dtype).reshape(b, 1, heads, dim)


def hybrid_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                     scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """transformers attention-function signature: ``(attn_output (B, T, H, D), None)``."""
    q_len, kv_len = query.shape[-2], key.shape[-2]
    if q_len == 1 and not torch.is_grad_enabled() and query.device.type == "cpu":
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        return decode_attention(query, key, value, attention_mask, scale), None
    if kv_len > SHORT_KV or query.device.type != "cpu":
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, repeat_kv(key, groups).transpose(2, 3)) * scale
    if not torch.isfinite(scores).all():
        # a diverged model (overflowing scores): sdpa turns them into NaN, which training reports
        # as non-finite; filling masked slots with a finite minimum would hide the divergence
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    low = torch.finfo(scores.dtype).min
    if attention_mask is None:
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        if causal and q_len > 1:
            keep = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device).tril(kv_len - q_len)
            scores = scores.masked_fill(~keep, low)
    elif attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask[..., :kv_len], low)
    else:
        scores = scores + attention_mask[..., :kv_len]
    upcast = torch.float32 if scores.dtype in (torch.bfloat16, torch.float16) else scores.dtype
    probs = torch.softmax(scores, dim=-1, dtype=upcast).to(query.dtype)
    if dropout and module.training:
        probs = torch.nn.functional.dropout(probs, p=dropout, training=True)
    return torch.matmul(probs, repeat_kv(value, groups)).transpose(1, 2).contiguous(), None


def register() -> str:
    """Make ``hybrid`` a transformers attention implementation (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, hybrid_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
