"""The LM head and cross entropy only where there is a label.

A causal LM's forward projects every position onto the vocabulary (SmolLM2: 49,152 x 576, about a
fifth of the model's FLOPs and a (tokens x vocab) fp32 logits tensor plus its gradient), though
chat SFT supervises only the assistant tokens. Here the decoder runs to hidden states, the
positions whose *shifted* label is set are gathered, and only those go through ``lm_head`` and the
loss; optionally in chunks whose logits are recomputed in backward, so the logits never exist for
more than ``chunk`` tokens at a time. Same sum over the same targets, divided by the same count as
transformers' ``ForCausalLMLoss``: the loss and gradients match the standard path
(tests/unit/test_fast_loss.py).

Used for models whose logits are plainly ``lm_head(hidden)`` (Llama, Qwen, Mistral, ...); models
with logit soft-capping or scaling, and prompt-learning PEFT methods, keep the standard path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import Trainer

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


def labelled_loss(model, inputs: dict, num_items_in_batch=None, chunk: int | None = None):
    """Mean cross entropy over labelled (shifted) positions, as the standard path computes it.

    Args:
        model: a causal LM or a PeftModel around one.
        inputs: ``input_ids``, ``labels`` and optionally ``attention_mask``/``position_ids``.
        num_items_in_batch: the divisor (the Trainer's count over the accumulated batch);
            None divides by this batch's labelled-token count.
        chunk: project at most this many positions at a time (recomputed in backward).
    """
    base = _base_model(model)
    extra = {k: inputs[k] for k in ("attention_mask", "position_ids") if inputs.get(k) is not None}
    hidden = base.get_decoder()(input_ids=inputs["input_ids"], use_cache=False, **extra)[0]
    targets = inputs["labels"][:, 1:]  # (B, T-1): token t is predicted at position t-1
    keep = targets != IGNORE
    picked = hidden[:, :-1][keep]  # (N, H)
    wanted = targets[keep]  # (N,)
    head = base.get_output_embeddings()
    if chunk and picked.shape[0] > chunk:
        from torch.utils.checkpoint import checkpoint

        total = sum(checkpoint(_head_ce_sum, head, h, t, use_reentrant=False)
                    for h, t in zip(picked.split(chunk), wanted.split(chunk)))
    else:
        total = _head_ce_sum(head, picked, wanted)
    if num_items_in_batch is None:
        num_items_in_batch = keep.sum().clamp(min=1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


class FastLossTrainer(Trainer):
    """A Trainer whose training loss projects only labelled positions (evaluation unchanged)."""

    loss_chunk: int | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs or not model.training or not supports_fast_loss(model):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = labelled_loss(model, inputs, num_items_in_batch, self.loss_chunk)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as Trainer.compute_loss does
        return loss
