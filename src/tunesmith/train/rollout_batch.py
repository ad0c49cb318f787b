"""Prompt + completion sequences as a training batch: padded, or packed padding-free.

Completions of one step differ in length (a model that has learned to stop writes a dozen
tokens where the budget allows hundreds), so a padded batch computes mostly padding. Packed
(``packing``: true, or ``auto`` when the bins save more than a tenth of the padded slots, as
SFT decides), the sequences lie end to end in bins with ``position_ids`` restarting at each
(``data/packing.py``: transformers then attends block-diagonally), and ``gather`` picks, for
every completion token, the flat position of the hidden state that predicts it.

GRPO's ``num_generations`` completions of one prompt share it (:func:`share_prompts`): one row
holds the prompt once and every completion after it, positions continuing from the prompt for
each, and a 4-D mask lets each completion see the prompt and its own earlier tokens only, so the
prompt is computed once per group instead of once per completion (transformers passes a 4-D
mask through to the attention kernel as it is: sdpa and tunesmith's ``hybrid`` apply it).

Every layout carries ``completion_ids`` and ``completion_mask`` (N, C), right-padded, so the
losses see the same (N, C) tensors (``policy_logps.completion_hidden`` reads all three).
"""

from __future__ import annotations

import torch

from ..data.packing import AUTO_MAX_SHARE, first_fit_bins, packing_mode, plan_bins


def _completions(completion_ids: list[list[int]], pad: int) -> dict:
    length = max(1, max(len(c) for c in completion_ids))  # an all-empty batch keeps one slot
    return {"completion_ids": torch.tensor([c + [pad] * (length - len(c)) for c in completion_ids]),
            "completion_mask": torch.tensor([[1] * len(c) + [0] * (length - len(c))
                                             for c in completion_ids])}


def pad_rollout(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad: int) -> dict:
    """Left-padded prompts + right-padded completions.

    Returns:
        ``input_ids``/``attention_mask`` (N, P + C), ``completion_ids``/``completion_mask`` (N, C).
    """
    out = _completions(completion_ids, pad)
    width, length = max(len(p) for p in prompt_ids), out["completion_ids"].shape[1]
    rows, masks = [], []
    for p, c in zip(prompt_ids, completion_ids):
        rows.append([pad] * (width - len(p)) + p + c + [pad] * (length - len(c)))
        masks.append([0] * (width - len(p)) + [1] * (len(p) + len(c)) + [0] * (length - len(c)))
    return {"input_ids": torch.tensor(rows), "attention_mask": torch.tensor(masks), **out}


def pack_rollout(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad: int,
                 bins: list[list[int]] | None = None) -> dict:
    """The sequences packed into bins (first-fit decreasing, as long as the longest sequence).

    Returns:
        ``packed_ids``/``packed_positions`` (R, W), ``gather`` (N, C) flat indices into the
        (R * W) hidden states, ``completion_ids``/``completion_mask`` (N, C).
    """
    lengths = [len(p) + len(c) for p, c in zip(prompt_ids, completion_ids)]
    bins = bins or first_fit_bins(lengths, max(lengths))
    width = max(sum(lengths[i] for i in b) for b in bins)
    out = _completions(completion_ids, pad)
    gather = torch.zeros_like(out["completion_ids"])
    rows, positions = [], []
    for r, members in enumerate(bins):
        row: list[int] = []
        for i in members:
            first = r * width + len(row) + len(prompt_ids[i]) - 1  # predicts completion token 0
            gather[i, :len(completion_ids[i])] = torch.arange(first, first + len(completion_ids[i]))
            row += prompt_ids[i] + completion_ids[i]
        tail = width - len(row)
        positions.append([p for i in members for p in range(lengths[i])] + list(range(tail)))
        rows.append(row + [pad] * tail)
    return {"packed_ids": torch.tensor(rows), "packed_positions": torch.tensor(positions),
            "gather": gather, **out}


def share_prompts(prompt_ids: list[list[int]], completion_ids: list[list[int]],
                  group: int, pad: int) -> dict:
    """One row per prompt: the prompt, then its ``group`` completions, each seeing the prompt and
    itself only.

    Returns:
        ``shared_ids``/``shared_positions`` (R, W), ``shared_mask`` (R, 1, W, W) bool,
        ``gather`` (N, C), ``completion_ids``/``completion_mask`` (N, C).
    """
    out = _completions(completion_ids, pad)
    groups = range(0, len(prompt_ids), group)
    width = max(len(prompt_ids[g]) + sum(map(len, completion_ids[g:g + group])) for g in groups)
    ids = torch.full((len(groups), width), pad)
    positions = torch.arange(width).repeat(len(groups), 1)
    mask = torch.eye(width, dtype=torch.bool).repeat(len(groups), 1, 1, 1)  # pads see themselves
    gather = torch.zeros_like(out["completion_ids"])
    for r, g in enumerate(groups):
        prompt = prompt_ids[g]
        n = len(prompt)
        ids[r, :n] = torch.tensor(prompt)
        mask[r, 0, :n, :n] = torch.ones(n, n, dtype=torch.bool).tril()
        start = n
        for i in range(g, g + group):
            c = completion_ids[i]
            span = slice(start, start + len(c))
            ids[r, span] = torch.tensor(c, dtype=ids.dtype)
            positions[r, span] = torch.arange(n, n + len(c))
            mask[r, 0, span, :n] = True
            mask[r, 0, span, span] = torch.ones(len(c), len(c), dtype=torch.bool).tril()
            row = r * width  # token 0 is predicted from the prompt's last state, j from token j-1
            gather[i, :len(c)] = torch.tensor([row + n - 1] + list(range(row + start,
                                                                          row + start + len(c) - 1)))
            start += len(c)
    return {"shared_ids": ids, "shared_positions": positions, "shared_mask": mask,
            "gather": gather, **out}


def rollout_batch(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad: int,
                  packing="auto", group: int = 1) -> dict:
    """The layout for the batch: prompts shared by their ``group`` completions (group > 1),
    else packed or padded per ``packing`` (true, false, auto: packed when it saves work)."""
    if group > 1:
        return share_prompts(prompt_ids, completion_ids, group, pad)
    mode = packing_mode(packing)
    if mode == "off":
        return pad_rollout(prompt_ids, completion_ids, pad)
    lengths = [len(p) + len(c) for p, c in zip(prompt_ids, completion_ids)]
    bins = plan_bins(lengths, max_share=AUTO_MAX_SHARE if mode == "auto" else 1.0)
    if bins is None:
        return pad_rollout(prompt_ids, completion_ids, pad)
    return pack_rollout(prompt_ids, completion_ids, pad, bins)
