"""The LM head and cross entropy only where there is a label.

A causal LM's forward projects every position onto the vocabulary (SmolLM2: 49,152 x 576, about a
fifth of the model's FLOPs and a (tokens x vocab) fp32 logits tensor plus its gradient), though
chat SFT supervises only the assistant tokens. Here the decoder runs to hidden states, the
positions whose *shifted* label is set are gathered, and only those go through ``lm_head`` and the
loss, in chunks: for a frozen head (every adapter method) a fused step computes each chunk's loss
and its gradient together and drops the logits, so at most ``chunk`` x vocab logits ever exist and
nothing is recomputed; a trainable head is chunked with recomputation in backward. Same sum over the same targets, divided by the same count as
transformers' ``ForCausalLMLoss``: the loss and gradients match the standard path
(tests/unit/test_fast_loss.py).

Used for models whose logits are plainly ``lm_head(hidden)`` (Llama, Qwen, Mistral, ...); models
with logit soft-capping or scaling, and prompt-learning PEFT methods, keep the standard path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100
# Config attributes that mean logits are not just lm_head(hidden).
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier")


def _base_model(model):
    model = getattr(model, "module", model)  # DDP / accelerate wrappers
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_fast_loss(model) -> bool:
    """True when the model's logits are ``lm_head(decoder(x))`` with nothing in between."""
    peft_cfg = getattr(getattr(model, "module", model), "active_peft_config", None)
    if peft_cfg is not None and getattr(peft_cfg, "is_prompt_learning", False):
        return False
    base = _base_model(model)
    if not hasattr(base, "get_decoder") or base.get_output_embeddings() is None:
        return False
    cfg = base.config
    return not any(getattr(cfg, name, None) not in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS)


def _head_ce_sum(head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


# Logits held at once by the fused path: chunk x vocab fp32 values (64 MiB).
CHUNK_ELEMENTS = 2**24


def auto_chunk(vocab: int) -> int:
    return max(64, CHUNK_ELEMENTS // max(vocab, 1))


class FusedTokenLogps(torch.autograd.Function):
    """``log_softmax(hidden @ weight.T)[targets]`` per row (N,), chunk by chunk.

    The gradient with respect to ``hidden``, (onehot(target) - softmax) @ weight, is computed in
    the forward pass and stored as one (N, H) tensor, so no chunk's logits outlive its loop
    iteration and backward only scales its rows by the incoming per-token gradient: the head's
    logits never exist for more than ``chunk`` rows and are never recomputed. Only for a frozen,
    bias-free head (LoRA and the other adapters); the numerics follow the standard path (logits in
    the weight dtype, softmax in fp32, the logit gradient cast back to the weight dtype before the
    matmul). SFT's loss is minus their sum; preference losses sum them per sequence
    (``pref_logps.py``).
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk):
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        grad = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        for start in range(0, hidden.shape[0], chunk):
            h, t = hidden[start:start + chunk], targets[start:start + chunk]
            logits = F.linear(h, weight).float()
            lse = torch.logsumexp(logits, dim=-1)
            out[start:start + chunk] = logits.gather(1, t[:, None]).squeeze(1) - lse
            if grad is not None:
                probs = logits.sub_(lse[:, None]).exp_().neg_()  # -softmax, in place
                probs[torch.arange(t.shape[0], device=t.device), t] += 1.0
                grad[start:start + chunk] = probs.to(weight.dtype) @ weight
        ctx.save_for_backward(grad)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad * grad_output.to(grad.dtype)[:, None], None, None, None


def fusable_head(head) -> bool:
    """A plain frozen ``nn.Linear`` without bias (not quantized, not an adapter layer)."""
    return (type(head) is torch.nn.Linear and head.bias is None
            and not head.weight.requires_grad)


def head_loss_sum(head, hidden: torch.Tensor, targets: torch.Tensor,
                  chunk: int | None = None) -> torch.Tensor:
    """Summed cross entropy of ``head(hidden)``: fused and chunked where the head allows it,
    otherwise chunked with recomputation (``chunk`` given) or in one piece."""
    n = hidden.shape[0]
    if fusable_head(head):
        size = chunk or auto_chunk(head.weight.shape[0])
        return -FusedTokenLogps.apply(hidden, head.weight, targets, size).sum()
    if chunk and n > chunk:
        from torch.utils.checkpoint import checkpoint

        return sum(checkpoint(_head_ce_sum, head, h, t, use_reentrant=False)
                   for h, t in zip(hidden.split(chunk), targets.split(chunk)))
    return _head_ce_sum(head, hidden, targets)


def labelled_loss(model, inputs: dict, num_items_in_batch=None, chunk: int | None = None):
    """Mean cross entropy over labelled (shifted) positions, as the standard path computes it.

    Args:
        model: a causal LM or a PeftModel around one.
        inputs: ``input_ids``, ``labels`` and optionally ``attention_mask``/``position_ids``.
        num_items_in_batch: the divisor (the Trainer's count over the accumulated batch);
            None divides by this batch's labelled-token count.
        chunk: project at most this many positions at a time (None: ``auto_chunk`` for a
            fusable head, one piece otherwise).
    """
    base = _base_model(model)
    extra = {k: inputs[k] for k in ("attention_mask", "position_ids") if inputs.get(k) is not None}
    hidden = base.get_decoder()(input_ids=inputs["input_ids"], use_cache=False, **extra)[0]
    targets = inputs["labels"][:, 1:]  # (B, T-1): token t is predicted at position t-1
    keep = targets != IGNORE
    picked = hidden[:, :-1][keep]  # (N, H)
    wanted = targets[keep]  # (N,)
    total = head_loss_sum(base.get_output_embeddings(), picked, wanted, chunk)
    if num_items_in_batch is None:
        num_items_in_batch = keep.sum().clamp(min=1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


_PASSIVE = ("attention_mask", "position_ids", "use_cache", "return_dict", "output_attentions",
            "output_hidden_states", "logits_to_keep")


def _fast_applies(model, input_ids, labels, kwargs: dict) -> bool:
    active = [k for k, v in kwargs.items() if v is not None and k not in _PASSIVE]
    return model.training and input_ids is not None and labels is not None and not active


def enable_fast_loss(model, chunk: int | None = None) -> bool:
    """Make ``model``'s training forward (with labels) compute :func:`labelled_loss`.

    Installed on the causal-LM instance itself (before or after PEFT wraps it: PEFT calls the
    base model's ``forward``, and LoRA layers sit inside it), so no Trainer subclass is needed.
    Outputs then carry the loss and ``logits=None``; evaluation, generation and calls with
    ``inputs_embeds``/caches use the original forward. Returns False (nothing changed) when the
    model does not qualify (:func:`supports_fast_loss`).
    """
    base = _base_model(model)
    if not supports_fast_loss(model) or getattr(base, "_tunesmith_fast_loss", False):
        return False
    from transformers.modeling_outputs import CausalLMOutputWithPast

    original = base.forward

    def forward(input_ids=None, labels=None, num_items_in_batch=None, **kwargs):
        if not _fast_applies(base, input_ids, labels, kwargs):
            extra = {"num_items_in_batch": num_items_in_batch} if num_items_in_batch is not None else {}
            return original(input_ids=input_ids, labels=labels, **extra, **kwargs)
        batch = {"input_ids": input_ids, "labels": labels, **kwargs}
        return CausalLMOutputWithPast(loss=labelled_loss(base, batch, num_items_in_batch, chunk))

    base.forward = forward
    base._tunesmith_fast_loss = True
    return True
