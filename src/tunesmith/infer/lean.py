"""A lean forward for decoding Llama-family models on a CPU: fused, prepacked weights and few ops.

A batch-8 decode step of SmolLM2-135M through transformers' modules runs about 6,000 small tensor
operations (views, casts, dispatch through PEFT's wrappers) around its 211 matrix products; on a
2-core CPU they take as long as the products themselves. This forward runs the same arithmetic
with about 30 operations a layer: q/k/v and gate/up multiplied as one fused weight each (bigger
products run closer to the memory bandwidth), every weight prepacked in oneDNN's blocked layout
(``packed.py``), the rotary embedding applied to queries and keys at once, keys and values written
straight into the slot cache (``slots.py``).

A LoRA adapter is folded into the fused copies (``W + B A s``, rounded to the weight's dtype as a
merge rounds it), so the model's own weights are never modified: nothing to restore afterwards.
The copies are taken when the forward is built, so it serves as long as the weights do not change
(a chat engine's life, one rollout of online RL).

Covered: ``llama``, ``mistral``, ``qwen2`` and ``qwen3`` decoders (bias or not, per-head q/k norms,
any rope scaling: the model's own rotary module computes the angles) with plain or LoRA linear
layers in fp32/bf16/fp16 on the CPU. Anything else (quantized or sharded weights, other adapter
kinds, DoRA, other architectures) returns ``None`` from :func:`build` with the reason, and the
model's own forward runs. ``tests/unit/infer/test_lean.py`` checks logits and greedy tokens against
the model's own forward.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .packed import can_pack, pack, packed_linear

FAMILIES = ("llama", "mistral", "qwen2", "qwen3")
FLOATS = (torch.float32, torch.bfloat16, torch.float16)


class Unsupported(Exception):
    """Why the lean forward cannot run this model."""


@dataclass
class Linear:
    """A (fused) weight, prepacked where oneDNN has kernels for its dtype; ``source`` identifies
    the tensors it was made from (a plain layer's copy is reused while they are unchanged)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    packed: torch.Tensor | None
    source: tuple | None = None

    @classmethod
    @torch.no_grad()
    def of(cls, modules: list, keep: dict | None = None) -> Linear:
        parts = [_parts(m) for m in modules]  # the layers' own parameters (their identity)
        source = _source(parts)
        if keep is not None and source is not None and keep.get("source") == source:
            return keep["linear"]
        first = parts[0][0]
        weight = first.new_empty(sum(w.shape[0] for w, _, _ in parts), first.shape[1])
        row = 0
        for w, _, deltas in parts:
            rows = weight[row:row + w.shape[0]]
            if not deltas:
                rows.copy_(w)
            for i, (b, a, scale) in enumerate(deltas):  # W + s B A, summed in the adapter's
                torch.add(rows if i else w, torch.mm(b, a), alpha=scale, out=rows)  # dtype
            row += w.shape[0]
        bias = None
        if any(b is not None for _, b, _ in parts):
            bias = torch.cat([b if b is not None else weight.new_zeros(w.shape[0])
                              for w, b, _ in parts])
        packed = pack(weight) if can_pack(weight.dtype) else None
        linear = cls(weight if packed is None else None, bias, packed, source)
        if keep is not None and source is not None:
            keep.update(source=source, linear=linear)
        return linear

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return packed_linear(x, self.packed, self.bias)
        return F.linear(x, self.weight, self.bias)


def _source(parts: list) -> tuple | None:
    """The identity of plain layers' tensors (None where an adapter adds to them)."""
    if any(deltas for _, _, deltas in parts):
        return None
    return tuple((id(t), t._version, t.data_ptr()) for w, b, _ in parts
                 for t in (w, b) if t is not None)


def _parts(module) -> tuple[torch.Tensor, torch.Tensor | None, list]:
    """A linear layer's weight and bias (its own parameters) and the LoRA products its active
    adapters add to the weight: ``(B, A, scale)``, in fp32 where the adapter is half precision
    (as PEFT's merge computes them on a CPU)."""
    from peft.tuners.lora import LoraLayer
    from peft.tuners.tuners_utils import BaseTunerLayer

    if not isinstance(module, BaseTunerLayer):
        return _plain(module), module.bias, []
    if not isinstance(module, LoraLayer):
        raise Unsupported(f"{type(module).__name__} adapters")
    base = module.get_base_layer()
    deltas = []
    for name in [] if module.merged else module.active_adapters:
        if name not in module.lora_A:
            continue
        if module.use_dora.get(name) or getattr(module, "lora_variant", {}).get(name) \
                or getattr(module, "lora_bias", {}).get(name) or module.fan_in_fan_out:
            raise Unsupported("DoRA and other LoRA variants")
        b, a = module.lora_B[name].weight.detach(), module.lora_A[name].weight.detach()
        if b.dtype in (torch.bfloat16, torch.float16):
            b, a = b.float(), a.float()
        deltas.append((b, a, module.scaling[name]))
    return _plain(base), base.bias, deltas


def _plain(module) -> torch.Tensor:
    if type(module) is not torch.nn.Linear:
        raise Unsupported(f"{type(module).__name__} layers")
    weight = module.weight
    if type(weight) not in (torch.Tensor, torch.nn.Parameter) or weight.dtype not in FLOATS \
            or weight.device.type != "cpu":
        raise Unsupported("quantized, sharded or non-CPU weights")
    return weight


@dataclass
class Layer:
    norm_in: torch.Tensor
    qkv: Linear
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    o: Linear
    norm_post: torch.Tensor
    gate_up: Linear
    down: Linear


class LeanForward:
    """``(ids, positions, mask, cache) -> logits`` of each row's last position, for the slot
    cache's current window (decode: one query per row; prefill: left-padded rows)."""

    def __init__(self, model, keep: dict | None = None):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = base.config
        if getattr(config, "model_type", None) not in FAMILIES:
            raise Unsupported(f"model type {getattr(config, 'model_type', None)!r}")
        if getattr(config, "hidden_act", "silu") != "silu":
            raise Unsupported(f"activation {config.hidden_act!r}")
        core = base.model
        self.embed, self.rotary = core.embed_tokens, core.rotary_emb
        self.eps = core.norm.variance_epsilon
        self.norm = core.norm.weight.detach()
        attn = core.layers[0].self_attn
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim, self.scale = attn.head_dim, attn.scaling
        self.layers = [self._layer(layer) for layer in core.layers]
        self.head = Linear.of([base.lm_head], keep)

    def _layer(self, layer) -> Layer:
        a, m = layer.self_attn, layer.mlp
        norm = getattr(a, "q_norm", None)
        if norm is not None and getattr(norm, "variance_epsilon", self.eps) != self.eps:
            raise Unsupported("per-head norms with their own epsilon")
        return Layer(layer.input_layernorm.weight.detach(),
                     Linear.of([a.q_proj, a.k_proj, a.v_proj]),
                     None if norm is None else a.q_norm.weight.detach(),
                     None if norm is None else a.k_norm.weight.detach(),
                     Linear.of([a.o_proj]), layer.post_attention_layernorm.weight.detach(),
                     Linear.of([m.gate_proj, m.up_proj]), Linear.of([m.down_proj]))

    def decode_attention(self, q, k, v, mask) -> torch.Tensor:
        """One query per row: torch's fused CPU kernel, which reads a half-precision cache as it
        is (batch 8, SmolLM2's heads, bf16, 400 keys: 108 us a layer against 200 for products
        cast to fp32, 397 for bf16 ones). In fp32 the query heads that share a key/value head go
        in as that head's queries (143 against 197 us with ``enable_gqa``)."""
        n, h, _, d = q.shape
        if q.dtype == torch.float32:
            grouped = q.reshape(n, self.kv_heads, h // self.kv_heads, d)
            return F.scaled_dot_product_attention(grouped, k, v, attn_mask=mask, scale=self.scale)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale,
                                              enable_gqa=True)

    def rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """transformers' RMSNorm: in fp32, cast back, then scaled."""
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * h.to(x.dtype)

    def rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x (n, T, heads, D) rotated; cos/sin (n, T, 1, D)."""
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor,
                 cache) -> torch.Tensor:
        # the dtypes are the weights' own: a training run's autocast (rollouts run under it)
        # would cast an fp32 model's attention to bf16 and add casts around every product
        with torch.autocast("cpu", enabled=False):
            return self._forward(ids, positions, mask, cache)

    def _forward(self, ids, positions, mask, cache) -> torch.Tensor:
        n, t = ids.shape
        h, kvh, d = self.heads, self.kv_heads, self.head_dim
        x = self.embed(ids)  # (n, T, hidden)
        cos, sin = self.rotary(x, positions)
        cos, sin = cos[:, :, None], sin[:, :, None]
        r0, r1, c0, c1, k0 = cache.window
        for i, layer in enumerate(self.layers):
            qkv = layer.qkv(self.rms(x, layer.norm_in)).view(n, t, h + 2 * kvh, d)
            qk, v = qkv[:, :, :h + kvh], qkv[:, :, h + kvh:]
            if layer.q_norm is not None:
                qk = torch.cat((self.rms(qk[:, :, :h], layer.q_norm),
                                self.rms(qk[:, :, h:], layer.k_norm)), dim=2)
            qk = self.rope(qk, cos, sin)
            keys, values = cache.keys[i], cache.values[i]
            keys[r0:r1, :, c0:c1] = qk[:, :, h:].transpose(1, 2)
            values[r0:r1, :, c0:c1] = v.transpose(1, 2)
            q = qk[:, :, :h].transpose(1, 2)  # (n, H, T, D)
            k, vv = keys[r0:r1, :, k0:c1], values[r0:r1, :, k0:c1]
            if t == 1:
                out = self.decode_attention(q, k, vv, mask).reshape(n, 1, h * d)
            else:
                out = F.scaled_dot_product_attention(q, k, vv, attn_mask=mask,
                                                     scale=self.scale, enable_gqa=True)
                out = out.transpose(1, 2).reshape(n, t, h * d)
            x = x + layer.o(out)
            gate, up = layer.gate_up(self.rms(x, layer.norm_post)).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        return self.head(self.rms(x[:, -1], self.norm)).float()


def build(model, keep: dict | None = None) -> tuple[LeanForward | None, str]:
    """The lean forward for ``model``, or None and why not. ``keep``: a dict the caller holds
    across builds, in which the output head's copy is kept while its weight is unchanged (its
    adapter-free copy is the largest: SmolLM2's 49,152-token vocabulary)."""
    try:
        return LeanForward(model, keep), "the lean decoder (fused, prepacked weights)"
    except Unsupported as why:
        return None, f"the model's own forward (not covered by the lean decoder: {why})"


def choose(model, keep: dict | None = None) -> tuple[LeanForward | None, str]:
    """:func:`build` where a copy of the model's weights fits in memory (``TUNESMITH_LEAN=0``
    turns it off)."""
    from ..hardware import copy_fits

    if os.environ.get("TUNESMITH_LEAN", "1") == "0":
        return None, "the model's own forward (TUNESMITH_LEAN=0)"
    fits, need = copy_fits([p for p in model.parameters() if p.device.type == "cpu"])
    if not fits:
        return None, f"the model's own forward (a {need:,.0f} MiB copy of the weights does not fit)"
    return build(model, keep)
