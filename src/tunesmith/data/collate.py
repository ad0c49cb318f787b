"""Batches: right padding with -100 labels (padding never turns EOS into an ignored label)."""

from __future__ import annotations

import torch

from .tokenize import IGNORE


class PadCollator:
    """Pad ``input_ids`` with ``pad_id``, ``labels`` with -100, and build ``attention_mask``."""

    def __init__(self, pad_id: int, multiple_of: int | None = None):
        self.pad_id = pad_id
        self.multiple_of = multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        if self.multiple_of:
            length = -(-length // self.multiple_of) * self.multiple_of
        ids = torch.full((len(features), length), self.pad_id, dtype=torch.long)  # (B, T)
        labels = torch.full((len(features), length), IGNORE, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(features), length), dtype=torch.long)  # (B, T)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
