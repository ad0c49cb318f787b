"""Per-sequence log-probabilities of the labelled tokens, for preference losses.

DPO, KTO, ORPO and SimPO need, for every answer in the batch, the sum (or mean) of the log-probs
of its answer tokens. As in ``fast_loss.py``, the decoder runs to hidden states, only the
positions whose shifted label is set go through the LM head, and a frozen head is fused: each
chunk's log-probs and their gradient with respect to the hidden states are computed together,
so no (tokens x vocab) logits tensor is ever held. The batch may be packed (several sequences
per row, ``position_ids`` restarting): ``seq_index`` says which sequence each token belongs to,
and the per-token log-probs are summed per sequence with ``index_add``.

Prompt-learning PEFT methods (virtual tokens) run the standard forward and take log-softmax of
the full logits; their batches are padded, never packed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .fast_loss import (IGNORE, FusedTokenLogps, _base_model, auto_chunk, fusable_head,
                        supports_fast_loss)


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


def sequence_logps(model, batch: dict, chunk: int | None = None):
    """Summed log-probs of every sequence's labelled tokens, and their counts.

    Args:
        model: a causal LM or a PeftModel around one.
        batch: ``input_ids``, ``labels`` (-100 outside the answers), ``seq_index`` (the sequence
            of each token, -1 on padding), ``n_seqs`` and ``position_ids`` (packed) or
            ``attention_mask`` (padded).
    Returns:
        ``(logps, counts)``: two (n_seqs,) fp32 tensors.
    """
    n_seqs = int(batch["n_seqs"])
    if not supports_fast_loss(model):
        return _standard_logps(model, batch, n_seqs)
    base = _base_model(model)
    extra = {k: batch[k] for k in ("attention_mask", "position_ids") if batch.get(k) is not None}
    hidden = base.get_decoder()(input_ids=batch["input_ids"], use_cache=False, **extra)[0]
    targets = batch["labels"][:, 1:]  # (B, T-1): token t is predicted at position t-1
    keep = targets != IGNORE
    seq = batch["seq_index"][:, 1:][keep]  # (N,)
    logps = token_logps(base.get_output_embeddings(), hidden[:, :-1][keep], targets[keep], chunk)
    return _per_sequence(logps, seq, n_seqs)


def _standard_logps(model, batch: dict, n_seqs: int):
    """The model's own forward (prompt-learning PEFT): full logits, then log-softmax."""
    kwargs = {k: batch[k] for k in ("attention_mask", "position_ids") if batch.get(k) is not None}
    logits = model(input_ids=batch["input_ids"], use_cache=False, **kwargs).logits
    width = batch["input_ids"].shape[1]
    logits = logits[:, -width:][:, :-1]  # virtual tokens come first; drop them
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    picked = logits[keep].float()
    logps = picked.gather(1, targets[keep][:, None]).squeeze(1) - torch.logsumexp(picked, dim=-1)
    return _per_sequence(logps, batch["seq_index"][:, 1:][keep], n_seqs)
