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


def completion_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     n_completion: int, temperature: float = 1.0,
                     chunk: int | None = None) -> torch.Tensor:
    """Log-probabilities (B, C) of the last ``n_completion`` tokens of each row.

    Args:
        input_ids: (B, P + C) left-padded prompts followed by right-padded completions.
        attention_mask: (B, P + C), 0 on padding.
        n_completion: C.
        temperature: the sampling temperature the logits are divided by.
    """
    hidden = decoder_hidden(model, input_ids, attention_mask)
    picked = hidden[:, -n_completion - 1:-1]  # (B, C, H): position t predicts token t + 1
    targets = input_ids[:, -n_completion:]  # (B, C)
    head = _base_model(model).get_output_embeddings()
    flat = head_logps(head, picked.reshape(-1, picked.shape[-1]), targets.reshape(-1),
                      temperature, chunk)
    return flat.view(targets.shape)
