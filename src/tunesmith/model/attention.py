"""``hybrid`` attention: plain matmul-softmax attention for short sequences, sdpa for long ones.

On CPU, torch's fused sdpa kernel pays a fixed cost per call that dominates short sequences: for
SmolLM2's shapes (batch 8, 9 heads of 64) forward+backward takes 6.1 ms at 64 tokens where the
plain math takes 3.0, 13.9 vs 7.5 ms at 128; from about 200 tokens the fused kernel wins (19.7 vs
28.7 ms at 256, 124 vs 820 ms at 1,024, and it never materializes the T x T scores). Chat SFT rows
are often short, so on CPU ``attn_implementation: auto`` picks this kernel: up to
``SHORT_KV`` keys the math path, beyond it transformers' own sdpa function. Both receive the same
masks (transformers' sdpa mask: None for plain causal, else a boolean mask, block-diagonal for
packed rows), so the result is the same attention either way (tests/unit/test_attention.py).

Packed rows (several sequences laid end to end, ``position_ids`` restarting at each) get a
block-diagonal mask, and the fused CPU kernel computes every block of a masked call, the masked
ones included. Where the mask is exactly that (checked against the position ids), each sequence
instead goes through the kernel on its own with ``is_causal``, which skips the blocks above the
diagonal: the same result at a fraction of the work (a W2 bin of [50, 67, 688, 27] tokens,
forward+backward: 114 vs 183 ms; one 832-token sequence: 107 vs 144 ms). A preference pair laid
out as prompt, chosen, rejected (the rejected answer sees the prompt, not the chosen one) is two
calls the same way: prompt and chosen causally, the rejected answer against the prompt and itself.
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
    if kv_len > SHORT_KV and query.device.type == "cpu":
        segments = packed_segments(kwargs.get("position_ids"), attention_mask, q_len, kv_len)
        if segments is not None:
            return segment_attention(query, key, value, segments, scaling,
                                     dropout if module.training else 0.0), None
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


MAX_PIECES = 64  # more pieces in a row than this (e.g. one-token padding): the masked call


_LAST_PLAN: list = [None, None, None]  # (position_ids, mask, plan) of the last call


def packed_segments(position_ids, attention_mask, q_len: int, kv_len: int):
    """Per row, its pieces ``(start, end, prefix)`` when ``attention_mask`` is exactly the mask
    they imply; else None (padding masks, a cache, any other mask). Every layer of a forward
    gets the same two tensors: the plan is worked out once and reused while they are the same
    objects (the cache holds them, so their ids cannot be reused meanwhile).

    A piece is a run of ``position_ids`` stepping by 1. One starting at position 0 begins a new
    sequence and sees itself causally (packed rows, as transformers builds their mask); one
    starting at k > 0 without continuing the piece before it is a branch: it sees the first k
    tokens of its sequence, ``prefix = (start, end)``, and itself causally (a preference pair's
    rejected answer after the shared prompt, ``data/pair_collate.py``)."""
    if _LAST_PLAN[0] is position_ids and _LAST_PLAN[1] is attention_mask and position_ids is not None:
        return _LAST_PLAN[2]
    plan = _plan(position_ids, attention_mask, q_len, kv_len)
    _LAST_PLAN[:] = [position_ids, attention_mask, plan]
    return plan


def _plan(position_ids, attention_mask, q_len: int, kv_len: int):
    if (position_ids is None or attention_mask is None or attention_mask.dtype != torch.bool
            or q_len != kv_len or position_ids.shape[-1] != q_len
            or attention_mask.dim() != 4 or attention_mask.shape[-2:] != (q_len, kv_len)):
        return None
    rows = attention_mask.shape[0]
    pos = position_ids.expand(rows, -1) if position_ids.shape[0] == 1 else position_ids
    if pos.shape[0] != rows:
        return None
    starts = torch.ones_like(pos, dtype=torch.bool)
    starts[:, 1:] = pos[:, 1:] - pos[:, :-1] != 1
    if int(starts.sum(-1).max()) > MAX_PIECES:
        return None
    plan, firsts = [], pos[starts].tolist()
    at = 0
    for row in starts:
        bounds = row.nonzero().flatten().tolist() + [q_len]
        pieces, root = [], None
        for a, b in zip(bounds[:-1], bounds[1:]):
            k = firsts[at]
            at += 1
            if k == 0:
                root = a
                pieces.append((a, b, None))
            elif root is not None and root + k <= a:
                pieces.append((a, b, (root, root + k)))
            else:
                return None
        plan.append(pieces)
    expected = torch.zeros(rows, q_len, q_len, dtype=torch.bool, device=attention_mask.device)
    for r, pieces in enumerate(plan):
        for a, b, prefix in pieces:
            expected[r, a:b, a:b] = torch.ones(b - a, b - a, dtype=torch.bool).tril()
            if prefix:
                expected[r, a:b, prefix[0]:prefix[1]] = True
    if not torch.equal(attention_mask.expand(rows, 1, q_len, q_len)[:, 0], expected):
        return None
    return plan


def segment_attention(query, key, value, segments, scaling, dropout: float):
    """Each piece of ``packed_segments``'s plan through the fused kernel on its own: a sequence
    with ``is_causal`` (the kernel skips the blocks above the diagonal), a branch against its
    prefix and itself. query (B, H, T, D), key/value (B, Hkv, T, D) -> (B, T, H, D)."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    gqa = query.shape[1] != key.shape[1]
    rows = []
    for b, pieces in enumerate(segments):
        parts = []
        for s, e, prefix in pieces:
            q, k, v = query[b:b + 1, :, s:e], key[b:b + 1, :, s:e], value[b:b + 1, :, s:e]
            if prefix is None:
                parts.append(sdpa(q, k, v, dropout_p=dropout, is_causal=True, scale=scaling,
                                  enable_gqa=gqa))
                continue
            p0, p1 = prefix
            k = torch.cat((key[b:b + 1, :, p0:p1], k), dim=2)
            v = torch.cat((value[b:b + 1, :, p0:p1], v), dim=2)
            n = e - s
            mask = torch.ones(n, p1 - p0 + n, dtype=torch.bool, device=query.device)
            mask[:, p1 - p0:] = mask[:, p1 - p0:].tril()
            parts.append(sdpa(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scaling,
                              enable_gqa=gqa))
        rows.append(torch.cat(parts, dim=2) if len(parts) > 1 else parts[0])
    out = torch.cat(rows) if len(rows) > 1 else rows[0]
    return out.transpose(1, 2).contiguous()


def register() -> str:
    """Make ``hybrid`` a transformers attention implementation (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, hybrid_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
