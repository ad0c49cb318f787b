"""Padding-free packing: the rows of a batch laid end to end, each row still on its own.

Rows are placed into bins (first-fit decreasing, bin size = the batch's longest row unless a
``capacity`` is given) and ``position_ids`` restart at 0 for every row. With no
``attention_mask``, transformers (>= 4.57 ``masking_utils.find_packed_sequence_indices``) reads the
position resets as sequence boundaries and builds a block-diagonal causal mask, so no token attends
across rows. The first token of every row gets label -100: in the unpacked batch it is never a
target (labels shift by one inside the model), and here it would otherwise be predicted from the
previous row's last token. The model must run with ``use_cache=False`` (training does):
with a KV cache transformers skips the packed-sequence detection. Tail padding forms its own segment (positions restart) with -100 labels.

The same rows, the same labels and the same mean over labelled tokens: packing changes how much
padding is computed, not what is learned (tests/unit/test_packing.py checks loss and gradients).
"""

from __future__ import annotations

import torch

from .tokenize import IGNORE

# ``packing: auto`` packs a batch only when its bins take at most this share of the padded
# batch's token slots: a batch of rows of about the same length is already dense, and its
# padded form keeps the simpler (and on CPU slightly faster) full-row attention.
AUTO_MAX_SHARE = 0.9


def packing_mode(value) -> str:
    """``packing`` (true, false or ``auto``) -> ``"on"``, ``"off"`` or ``"auto"``."""
    if value == "auto":
        return "auto"
    return "on" if value else "off"


def pad_or_pack(packing, pad_id: int):
    """The collator for ``packing``: padding (false), packing (true), or packing where it saves
    work and padding where the batch is dense (``auto``, the default)."""
    mode = packing_mode(packing)
    if mode == "off":
        from .collate import PadCollator

        return PadCollator(pad_id)
    return PackingCollator(pad_id, max_share=AUTO_MAX_SHARE if mode == "auto" else 1.0)


def plan_bins(lengths: list[int], capacity: int | None = None,
              max_share: float = 1.0) -> list[list[int]] | None:
    """The bins for a batch of rows this long, or None when the padded batch is as cheap
    (nothing shares a bin, or the bins need more than ``max_share`` of the padded slots)."""
    bins = first_fit_bins(lengths, max(capacity or 0, max(lengths)))
    width = max(sum(lengths[i] for i in b) for b in bins)
    dense = max_share < 1.0 and len(bins) * width > max_share * len(lengths) * max(lengths)
    if len(bins) == len(lengths) or dense:
        return None
    return bins


def first_fit_bins(lengths: list[int], capacity: int) -> list[list[int]]:
    """Row indices grouped into bins of at most ``capacity`` tokens (first-fit decreasing)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return bins


class PackingCollator:
    """A batch of rows -> ``input_ids``/``labels``/``position_ids`` of shape (bins, L), no mask.

    Args:
        pad_id: token id for the tail padding of a bin.
        capacity: bin size in tokens; None packs into bins as long as the batch's longest row
            (attention stays no more quadratic than the padded batch's).
        max_share: pack only when the bins need at most this share of the padded batch's token
            slots (1.0: whenever two rows share a bin; ``packing: auto`` uses AUTO_MAX_SHARE).
    """

    def __init__(self, pad_id: int, capacity: int | None = None, max_share: float = 1.0):
        self.pad_id = pad_id
        self.capacity = capacity
        self.max_share = max_share

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        bins = plan_bins(lengths, self.capacity, self.max_share)
        if bins is None:
            from .collate import PadCollator  # dense already: the padded batch is as cheap

            return PadCollator(self.pad_id)(features)
        width = max(sum(lengths[i] for i in b) for b in bins)
        shape = (len(bins), width)
        ids = torch.full(shape, self.pad_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE, dtype=torch.long)
        positions = torch.zeros(shape, dtype=torch.long)
        for row, members in enumerate(bins):
            start = 0
            for i in sorted(members):  # keep the batch's order inside a bin
                n = lengths[i]
                ids[row, start:start + n] = torch.as_tensor(features[i]["input_ids"])
                labels[row, start:start + n] = torch.as_tensor(features[i]["labels"])
                labels[row, start] = IGNORE
                positions[row, start:start + n] = torch.arange(n)
                start += n
            positions[row, start:] = torch.arange(width - start)  # padding: its own segment
        return {"input_ids": ids, "labels": labels, "position_ids": positions}
