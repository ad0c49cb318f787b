"""Batches of preference examples: every answer of the batch in one padding-free forward.

A batch of B pairs is 2B sequences, chosen first then rejected (TRL's order), laid end to end
in as few rows as fit (first-fit decreasing, as ``packing.py``) with ``position_ids``
restarting per sequence, so the model attends within each sequence only. ``seq_index`` names the
sequence of every token (-1 on tail padding) for the per-sequence sums; the first token of every
sequence is never a label (it would be predicted from the previous sequence). When no two
sequences share a row the padded layout (``attention_mask``) is used instead, as it is then
no larger.

KTO batches (unpaired) carry a second packed batch, ``kl_*``: each prompt with another row's
answer (TRL's rotation within consecutive groups of a batch's size), for the KL estimate.
"""

from __future__ import annotations

import torch

from .packing import first_fit_bins
from .tokenize import IGNORE


def _first_label(labels: list[int]) -> int:
    return next((i for i, lab in enumerate(labels) if lab != IGNORE), len(labels))


def pack_sequences(seqs: list[dict], pad_id: int, pack: bool = True) -> dict:
    """``input_ids``/``labels``/``seq_index`` (+ ``position_ids`` or ``attention_mask``).

    Args:
        seqs: dicts with ``input_ids`` and ``labels``.
        pack: False always pads one sequence per row (prompt-learning methods).
    """
    lengths = [len(s["input_ids"]) for s in seqs]
    bins = first_fit_bins(lengths, max(lengths)) if pack else [[i] for i in range(len(seqs))]
    packed = len(bins) < len(seqs)
    if not packed:
        bins = [[i] for i in range(len(seqs))]
    width = max(sum(lengths[i] for i in b) for b in bins)
    shape = (len(bins), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE, dtype=torch.long)
    index = torch.full(shape, -1, dtype=torch.long)
    positions = torch.zeros(shape, dtype=torch.long)
    for row, members in enumerate(bins):
        start = 0
        for i in sorted(members):
            n = lengths[i]
            ids[row, start:start + n] = torch.as_tensor(seqs[i]["input_ids"])
            labels[row, start:start + n] = torch.as_tensor(seqs[i]["labels"])
            labels[row, start] = IGNORE
            index[row, start:start + n] = i
            positions[row, start:start + n] = torch.arange(n)
            start += n
        positions[row, start:] = torch.arange(width - start)  # padding: its own segment
    batch = {"input_ids": ids, "labels": labels, "seq_index": index,
             "n_seqs": torch.tensor(len(seqs))}
    if packed:
        batch["position_ids"] = positions
    else:
        batch["attention_mask"] = (index >= 0).long()
    return batch


class PairCollator:
    """Pairs -> one batch of 2B sequences (chosen 0..B-1, rejected B..2B-1), plus
    ``ref_logps`` (2B,) when the dataset carries precomputed reference log-probs."""

    def __init__(self, pad_id: int, pack: bool = True):
        self.pad_id, self.pack = pad_id, pack

    def __call__(self, features: list[dict]) -> dict:
        seqs = [f["chosen"] for f in features] + [f["rejected"] for f in features]
        batch = pack_sequences(seqs, self.pad_id, self.pack)
        if "ref_chosen" in features[0]:
            batch["ref_logps"] = torch.tensor([f["ref_chosen"] for f in features]
                                              + [f["ref_rejected"] for f in features])
        return batch


def kl_partner(features: list[dict], i: int, group: int) -> dict:
    """The answer row i is paired with for the KL estimate: the previous row of its group of
    ``group`` consecutive rows, the group's last for its first (TRL's rotation per batch)."""
    first = i - i % group
    size = min(group, len(features) - first)
    return features[first + (i - first - 1) % size]


def kl_sequence(row: dict, partner: dict, cutoff_len: int) -> dict:
    """Row's prompt followed by the partner's answer (labels on that answer)."""
    p, a = _first_label(row["labels"]), _first_label(partner["labels"])
    ids = (list(row["input_ids"][:p]) + list(partner["input_ids"][a:]))[:cutoff_len]
    labels = ([IGNORE] * p + list(partner["labels"][a:]))[:cutoff_len]
    return {"input_ids": ids, "labels": labels}


class UnpairedCollator:
    """KTO: the answers (``desirable`` flags) and the KL batch (``kl_`` keys), plus
    ``ref_logps``/``ref_kl_logps`` when precomputed."""

    def __init__(self, pad_id: int, pack: bool = True):
        self.pad_id, self.pack = pad_id, pack

    def __call__(self, features: list[dict]) -> dict:
        batch = pack_sequences(features, self.pad_id, self.pack)
        batch["desirable"] = torch.tensor([bool(f["flag"]) for f in features])
        kl = pack_sequences([f["kl"] for f in features], self.pad_id, self.pack)
        batch.update({f"kl_{k}": v for k, v in kl.items()})
        if "ref_logp" in features[0]:
            batch["ref_logps"] = torch.tensor([f["ref_logp"] for f in features])
            batch["ref_kl_logps"] = torch.tensor([f["ref_kl_logp"] for f in features])
        return batch
