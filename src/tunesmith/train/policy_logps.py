"""Per-token log-probabilities of generated completions (online RL: GRPO, PPO).

The decoder runs once over ``prompt + completion``; only the completion positions go through the
LM head, in chunks (a completion batch is G times a prompt batch, and full-vocabulary logits for
every prompt position would be most of the memory). Logits are divided by the sampling
temperature first, so the probabilities are those the completions were sampled from (as TRL
computes them).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from .fast_loss import _base_model, auto_chunk


def _chunk_logps(head, hidden: torch.Tensor, targets: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    logits = head(hidden).float() / temperature  # (N, V)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def head_logps(head, hidden: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
               chunk: int | None = None) -> torch.Tensor:
    """``log softmax(head(hidden) / temperature)[targets]`` for (N, H) hidden states, in chunks
    recomputed in backward (at most ``chunk`` x vocab logits are held)."""
    size = chunk or auto_chunk(head.weight.shape[0])
    if hidden.shape[0] <= size or not torch.is_grad_enabled():
        return torch.cat([_chunk_logps(head, h, t, temperature)
                          for h, t in zip(hidden.split(size), targets.split(size))])
    return torch.cat([checkpoint(_chunk_logps, head, h, t, temperature, use_reentrant=False)
                      for h, t in zip(hidden.split(size), targets.split(size))])


def decoder_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Last hidden states (B, T, H) of a causal LM (or a PeftModel around one).

    Position ids count from each row's first real token (prompts are left-padded), as
    generation numbers them."""
    base = _base_model(model)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
    return base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids, use_cache=False)[0]


def completion_hidden(model, batch: dict) -> torch.Tensor:
    """Hidden states (N, C, H) at the positions that predict each completion token (the state
    before each token: PPO's values are read there too), from a padded, packed or
    prompt-sharing batch (``rollout_batch.py``)."""
    n = batch["completion_ids"].shape[1]
    if "input_ids" in batch:
        hidden = decoder_hidden(model, batch["input_ids"], batch["attention_mask"])
        return hidden[:, -n - 1:-1]
    decoder = _base_model(model).get_decoder()
    if "shared_ids" in batch:  # the 4-D mask: each completion sees its prompt and itself
        hidden = decoder(input_ids=batch["shared_ids"], attention_mask=batch["shared_mask"],
                         position_ids=batch["shared_positions"], use_cache=False)[0]
    else:  # packed, no mask: position resets make the attention block-diagonal
        hidden = decoder(input_ids=batch["packed_ids"], position_ids=batch["packed_positions"],
                         use_cache=False)[0]
    return hidden.reshape(-1, hidden.shape[-1])[batch["gather"]]  # (N, C, H)


def logps_from_hidden(model, picked: torch.Tensor, targets: torch.Tensor,
                      temperature: float = 1.0, chunk: int | None = None) -> torch.Tensor:
    """Log-probabilities (N, C) of ``targets`` given the hidden states that predict them."""
    head = _base_model(model).get_output_embeddings()
    flat = head_logps(head, picked.reshape(-1, picked.shape[-1]), targets.reshape(-1),
                      temperature, chunk)
    return flat.view(targets.shape)


def completion_logps(model, batch: dict, temperature: float = 1.0,
                     chunk: int | None = None) -> torch.Tensor:
    """Log-probabilities (N, C) of each row's completion tokens (zero-padding included: mask
    with ``completion_mask``).

    Args:
        batch: a padded (``input_ids``/``attention_mask``: left-padded prompts, right-padded
            completions) or packed (``packed_ids``/``packed_positions``/``gather``) batch with
            ``completion_ids`` (N, C).
        temperature: the sampling temperature the logits are divided by.
    """
    picked = completion_hidden(model, batch)
    return logps_from_hidden(model, picked, batch["completion_ids"], temperature, chunk)
