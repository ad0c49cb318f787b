"""Prompt batches for online RL: the dataset, the collator and the sampler.

A batch is ``per_device_train_batch_size`` prompts (each then gets ``num_generations``
completions). With ``num_iterations`` > 1 each window of ``gradient_accumulation_steps``
batches is sampled again that many times in a row, so the same completions are trained on for
several optimizer steps (TRL's ``RepeatSampler`` shape); the trainer recognises a repeated batch
by its prompt indices and reuses its completions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset, Sampler

if TYPE_CHECKING:
    from ..config import RunConfig


class PromptDataset(Dataset):
    """PromptExamples, each item tagged with its index."""

    def __init__(self, examples):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return {"index": i, "example": self.examples[i]}


def collate_prompts(items: list[dict]) -> dict:
    """A batch of prompts as they are (the trainer tokenizes what it generates)."""
    return {"indices": [it["index"] for it in items], "examples": [it["example"] for it in items]}


def prompt_collator(cfg: RunConfig, tokenizer):
    return collate_prompts


class RepeatSampler(Sampler):
    """A seeded shuffle, each window of ``window`` indices repeated ``repeats`` times in a row.

    With repeats, an epoch uses whole batches only (``batch`` indices each): a repeated partial
    batch would not line up with its first pass. The order depends on the seed and the epoch
    only (``set_epoch``), so a resumed run draws the same prompts.
    """

    def __init__(self, n: int, batch: int, window: int, repeats: int, seed: int):
        self.n = n if repeats == 1 else n - n % batch
        self.window, self.repeats, self.seed = window, repeats, seed
        self.total = n
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer before each epoch: a resumed run sees the same order."""
        self.epoch = epoch

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.total, generator=gen).tolist()[: self.n]
        for start in range(0, self.n, self.window):
            chunk = order[start:start + self.window]
            for _ in range(self.repeats):
                yield from chunk

    def __len__(self) -> int:
        return self.n * self.repeats
