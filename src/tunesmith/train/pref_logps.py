"""Per-sequence log-probabilities of the labelled tokens, for preference losses.

DPO, KTO, ORPO and SimPO need, for every answer in the batch, the sum (or mean) of the log-probs
of its answer tokens. As in ``fast_loss.py``, the decoder runs to hidden states, only the
positions that predict an answer token go through the LM head, and a frozen head is fused: each
chunk's log-probs and their gradient with respect to the hidden states are computed together,
so no (tokens x vocab) logits tensor is ever held. The batch layout (``data/pair_collate.py``:
packed rows, a pair's prompt shared by its two answers) names those positions explicitly
(``target_pos``) and the sequence of each (``target_seq``); the per-token log-probs are summed
per sequence with ``index_add``.

Prompt-learning PEFT methods (virtual tokens) run the standard forward and take log-softmax of
the full logits; their batches are padded, never packed.
"""

from __future__ import annotations

import torch

from .fast_loss import FusedTokenLogps, _base_model, auto_chunk, fusable_head, supports_fast_loss


def _head_logps(head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    return logits.gather(1, targets[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)


def token_logps(head, hidden: torch.Tensor, targets: torch.Tensor,
                chunk: int | None = None) -> torch.Tensor:
    """Log-prob of each target under ``head(hidden)``: (N, H), (N,) -> (N,) fp32.

    Fused and chunked for a frozen bias-free head; otherwise chunked with recomputation in
    backward (a trainable head: full fine-tuning, ``modules_to_save: lm_head``)."""
    if fusable_head(head):
        size = chunk or auto_chunk(head.weight.shape[0])
        return FusedTokenLogps.apply(hidden, head.weight, targets, size)
    size = chunk or auto_chunk(head.weight.shape[0])
    if hidden.shape[0] <= size:
        return _head_logps(head, hidden, targets)
    from torch.utils.checkpoint import checkpoint

    return torch.cat([checkpoint(_head_logps, head, h, t, use_reentrant=False)
                      for h, t in zip(hidden.split(size), targets.split(size))])


def _per_sequence(values: torch.Tensor, seq: torch.Tensor, n_seqs: int):
    sums = torch.zeros(n_seqs, dtype=values.dtype, device=values.device).index_add(0, seq, values)
    counts = torch.bincount(seq, minlength=n_seqs).to(values.dtype)
    return sums, counts


def model_inputs(batch: dict) -> dict:
    """The layout keys of a ``pair_collate`` batch as the decoder takes them (a 4D mask, the
    packed position ids, or a 2D padding mask)."""
    extra = {k: batch[k] for k in ("position_ids",) if batch.get(k) is not None}
    mask = batch.get("mask_4d", batch.get("attention_mask"))
    if mask is not None:
        extra["attention_mask"] = mask
    return extra


def sequence_logps(model, batch: dict, chunk: int | None = None):
    """Summed log-probs of every sequence's answer tokens, and their counts.

    Args:
        model: a causal LM or a PeftModel around one.
        batch: a ``data/pair_collate.py`` batch: ``input_ids``, ``target_pos`` (flat position of
            the hidden state predicting each answer token), ``target_ids``, ``target_seq``,
            ``n_seqs`` and the layout keys.
    Returns:
        ``(logps, counts)``: two (n_seqs,) fp32 tensors.
    """
    n_seqs = int(batch["n_seqs"])
    if not supports_fast_loss(model):
        return _standard_logps(model, batch, n_seqs)
    base = _base_model(model)
    hidden = base.get_decoder()(input_ids=batch["input_ids"], use_cache=False,
                                **model_inputs(batch))[0]
    picked = hidden.reshape(-1, hidden.shape[-1])[batch["target_pos"]]  # (N, H)
    logps = token_logps(base.get_output_embeddings(), picked, batch["target_ids"], chunk)
    return _per_sequence(logps, batch["target_seq"], n_seqs)


def _standard_logps(model, batch: dict, n_seqs: int):
    """The model's own forward (prompt-learning PEFT, padded batches): full logits, then
    log-softmax at the answer tokens."""
    logits = model(input_ids=batch["input_ids"], use_cache=False, **model_inputs(batch)).logits
    width = batch["input_ids"].shape[1]
    logits = logits[:, -width:]  # virtual tokens come first; drop them
    picked = logits.reshape(-1, logits.shape[-1])[batch["target_pos"]].float()
    targets = batch["target_ids"]
    logps = picked.gather(1, targets[:, None]).squeeze(1) - torch.logsumexp(picked, dim=-1)
    return _per_sequence(logps, batch["target_seq"], n_seqs)
