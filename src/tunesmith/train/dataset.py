"""A torch Dataset over tokenized examples (what the Trainer iterates)."""

from __future__ import annotations

from torch.utils.data import Dataset


class ExampleDataset(Dataset):
    def __init__(self, examples):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        ex = self.examples[i]
        return {"input_ids": ex.input_ids, "labels": ex.labels}

    def lengths(self) -> list[int]:
        return [len(ex.input_ids) for ex in self.examples]

    def n_label_tokens(self) -> int:
        return sum(sum(1 for x in ex.labels if x != -100) for ex in self.examples)
