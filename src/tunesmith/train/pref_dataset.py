"""torch Datasets over preference examples (the data layer's flat, flagged Example lists).

Pairs are stored as consecutive examples (chosen, flag 1; rejected, flag 0) of one source row;
unpaired examples carry their desirable flag. Reference log-probs computed once before training
(``precompute_ref_log_probs``) are kept here, per item, so shuffling keeps them with their pair.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from ..data.pair_collate import kl_partner, kl_sequence


def _side(ex) -> dict:
    return {"input_ids": ex.input_ids, "labels": ex.labels}


class PairDataset(Dataset):
    """Item i: ``{"chosen", "rejected"}`` (+ ``ref_chosen``/``ref_rejected`` once precomputed)."""

    def __init__(self, examples):
        if len(examples) % 2 or any(c.flag != 1 or r.flag != 0 or c.row != r.row
                                    for c, r in zip(examples[::2], examples[1::2])):
            raise ValueError("pair examples must alternate chosen/rejected of one row")
        self.pairs = list(zip(examples[::2], examples[1::2]))
        self.ref: list[tuple[float, float]] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        chosen, rejected = self.pairs[i]
        item = {"chosen": _side(chosen), "rejected": _side(rejected)}
        if self.ref is not None:
            item["ref_chosen"], item["ref_rejected"] = self.ref[i]
        return item

    def lengths(self) -> list[int]:
        return [len(c.input_ids) + len(r.input_ids) for c, r in self.pairs]


class UnpairedDataset(Dataset):
    """Item i: the answer, its flag and its KL sequence (the prompt with another row's answer,
    fixed per group of ``group`` consecutive rows, as TRL builds it)."""

    def __init__(self, examples, group: int = 1, cutoff_len: int = 1 << 30):
        self.examples = list(examples)
        rows = [_side(e) for e in self.examples]
        self.kl = [kl_sequence(rows[i], kl_partner(rows, i, group), cutoff_len)
                   for i in range(len(rows))]
        self.ref: list[tuple[float, float]] | None = None

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        ex = self.examples[i]
        item = {**_side(ex), "flag": ex.flag, "kl": self.kl[i]}
        if self.ref is not None:
            item["ref_logp"], item["ref_kl_logp"] = self.ref[i]
        return item

    def lengths(self) -> list[int]:
        return [len(e.input_ids) for e in self.examples]
