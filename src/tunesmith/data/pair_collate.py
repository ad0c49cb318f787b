"""Batches of preference examples: every answer of the batch in one padding-free forward, the
shared prompt of a pair computed once.

A batch of B pairs is 2B sequences, chosen first then rejected (TRL's order). Each pair becomes
one *segment*: the prompt, then the chosen answer, then the rejected answer, where the rejected
answer's positions restart after the prompt and its tokens see the prompt but not the chosen
answer (a 4D attention mask). Both answers then get exactly the hidden states they would get as
two separate sequences, while the prompt's tokens are computed once instead of twice. Segments are
laid end to end in as few rows as fit (first-fit decreasing, as ``packing.py``).

Answers are scored through explicit indices, not a shifted-labels grid: ``target_pos`` is the
flat position (row * width + column) of the hidden state that predicts each answer token,
``target_ids`` the token and ``target_seq`` its sequence; ``last_pos`` is each sequence's last
token (a reward model's score); ``n_tokens`` counts the tokens fed (no padding). Pairs whose two
sides do not share a prompt token for token, and every batch of a virtual-token method
(``share=False, pack=False``), fall back to one sequence per segment (packed with
``position_ids``, or padded with a 2D ``attention_mask``).

KTO batches (unpaired) carry a second batch, ``kl_*``: each prompt with another row's answer
(TRL's rotation within consecutive groups of a batch's size), for the KL estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .packing import first_fit_bins
from .tokenize import IGNORE


def _first_label(labels: list[int]) -> int:
    return next((i for i, lab in enumerate(labels) if lab != IGNORE), len(labels))


@dataclass
class Piece:
    """Consecutive tokens of a segment.

    Attributes:
        seq: the sequence whose answer tokens (labels) and last token this piece holds; -1 for
            a shared prompt.
        part: 0 is seen by every later token of the segment; k > 0 only by part k itself.
        parent: the piece whose last token precedes this piece's first (its positions follow
            it); None for the segment's first piece.
    """

    ids: list
    labels: list
    seq: int
    part: int = 0
    parent: int | None = None


def sequence_segment(seq: dict, index: int) -> list[Piece]:
    return [Piece(list(seq["input_ids"]), list(seq["labels"]), index)]


def shared_prompt(chosen_ids, chosen_labels, rejected_ids, rejected_labels) -> int:
    """Length of the prompt a pair's two sides share token for token (computed once in a
    batch), or 0 when they do not."""
    p = _first_label(chosen_labels)
    if p > 0 and p == _first_label(rejected_labels) and \
            list(chosen_ids[:p]) == list(rejected_ids[:p]):
        return p
    return 0


def pair_tokens(chosen_ids, chosen_labels, rejected_ids, rejected_labels, share: bool = True) -> int:
    """Tokens a pair is fed as (its shared prompt once)."""
    p = shared_prompt(chosen_ids, chosen_labels, rejected_ids, rejected_labels) if share else 0
    return len(chosen_ids) + len(rejected_ids) - p


def pair_segments(chosen: dict, rejected: dict, i: int, n_pairs: int, share: bool) -> list:
    """One shared-prompt segment for pair i, or two plain ones when its sides' prompts differ."""
    p = shared_prompt(chosen["input_ids"], chosen["labels"], rejected["input_ids"],
                      rejected["labels"]) if share else 0
    if p:
        prompt = Piece(list(chosen["input_ids"][:p]), [IGNORE] * p, -1)
        return [[prompt,
                 Piece(list(chosen["input_ids"][p:]), list(chosen["labels"][p:]), i, 1, 0),
                 Piece(list(rejected["input_ids"][p:]), list(rejected["labels"][p:]),
                       n_pairs + i, 2, 0)]]
    return [sequence_segment(chosen, i), sequence_segment(rejected, n_pairs + i)]


def _segment_starts(segment: list[Piece]) -> tuple[list[int], list[int]]:
    """Each piece's offset in the segment and its first position id."""
    offsets, positions, at = [], [], 0
    for piece in segment:
        offsets.append(at)
        parent = segment[piece.parent] if piece.parent is not None else None
        positions.append(positions[piece.parent] + len(parent.ids) if parent else 0)
        at += len(piece.ids)
    return offsets, positions


class _Grid:
    """The (rows, width) tensors being filled, plus the target lists."""

    def __init__(self, rows: int, width: int, pad_id: int, n_seqs: int):
        shape = (rows, width)
        self.width = width
        self.ids = torch.full(shape, pad_id, dtype=torch.long)
        self.positions = torch.zeros(shape, dtype=torch.long)
        self.segment = -1 - torch.arange(rows * width).view(shape)  # padding: alone
        self.part = torch.zeros(shape, dtype=torch.long)
        self.targets: list[tuple[int, int, int]] = []  # (pred flat pos, token, seq)
        self.last = [-1] * n_seqs

    def put(self, row: int, start: int, segment: list[Piece], seg_id: int) -> int:
        offsets, firsts = _segment_starts(segment)
        for piece, off, pos0 in zip(segment, offsets, firsts):
            a, n = start + off, len(piece.ids)
            self.ids[row, a:a + n] = torch.as_tensor(piece.ids)
            self.positions[row, a:a + n] = torch.arange(pos0, pos0 + n)
            self.segment[row, a:a + n] = seg_id
            self.part[row, a:a + n] = piece.part
            self._targets(row, a, piece, segment, offsets, start)
        return start + sum(len(p.ids) for p in segment)

    def _targets(self, row, a, piece, segment, offsets, start) -> None:
        base = row * self.width
        for k, label in enumerate(piece.labels):
            if label == IGNORE:
                continue
            if k > 0:
                pred = a + k - 1
            elif piece.parent is not None:  # predicted by the parent's last token
                pred = start + offsets[piece.parent] + len(segment[piece.parent].ids) - 1
            else:
                continue  # a segment's first token has no predictor
            self.targets.append((base + pred, label, piece.seq))
        if piece.seq >= 0:
            self.last[piece.seq] = base + a + len(piece.ids) - 1

    def mask_4d(self) -> torch.Tensor:
        """(rows, 1, width, width) bool: same segment, causal, and a later part never sees
        another part's tokens (the rejected answer does not see the chosen one)."""
        seg, part = self.segment, self.part
        idx = torch.arange(self.width)
        same = seg[:, :, None] == seg[:, None, :]
        causal = idx[None, :] <= idx[:, None]
        visible = (part[:, None, :] == 0) | (part[:, None, :] == part[:, :, None])
        return (same & causal & visible)[:, None]


def layout(segments: list[list[Piece]], pad_id: int, n_seqs: int, pack: bool = True) -> dict:
    """Segments -> a batch (see the module doc for the keys)."""
    lengths = [sum(len(p.ids) for p in s) for s in segments]
    bins = first_fit_bins(lengths, max(lengths)) if pack else [[i] for i in range(len(segments))]
    width = max(sum(lengths[i] for i in b) for b in bins)
    grid = _Grid(len(bins), width, pad_id, n_seqs)
    for row, members in enumerate(bins):
        start = 0
        for i in sorted(members):  # keep the batch's order inside a row
            start = grid.put(row, start, segments[i], i)
    pos, tok, seq = zip(*grid.targets) if grid.targets else ((), (), ())
    batch = {"input_ids": grid.ids, "target_pos": torch.tensor(pos, dtype=torch.long),
             "target_ids": torch.tensor(tok, dtype=torch.long),
             "target_seq": torch.tensor(seq, dtype=torch.long),
             "last_pos": torch.tensor(grid.last, dtype=torch.long),
             "n_seqs": torch.tensor(n_seqs), "n_tokens": torch.tensor(sum(lengths))}
    if any(len(s) > 1 for s in segments):
        batch.update(position_ids=grid.positions, mask_4d=grid.mask_4d())
    elif len(bins) < len(segments):
        batch["position_ids"] = grid.positions  # packed: transformers reads the restarts
    else:
        batch["attention_mask"] = (grid.segment >= 0).long()
    return batch


def pack_sequences(seqs: list[dict], pad_id: int, pack: bool = True) -> dict:
    """Plain sequences (``input_ids``, ``labels``) -> a batch, sequence i = ``seqs[i]``."""
    return layout([sequence_segment(s, i) for i, s in enumerate(seqs)], pad_id, len(seqs), pack)


class PairCollator:
    """Pairs -> one batch of 2B sequences (chosen 0..B-1, rejected B..2B-1), each pair's prompt
    shared when ``share``; plus ``ref_logps`` (2B,) when the dataset carries precomputed
    reference log-probs.

    With ``pass_tokens`` set, a batch of more tokens than that comes as ``{"passes": [...],
    "n_tokens": ...}``: consecutive groups of whole pairs of at most ``pass_tokens`` tokens each
    (a longer pair alone), each collated as above and carrying ``pass_weight``, its share of the
    batch's pairs. Every pair loss is a mean over pairs, so the weighted sum of the passes'
    losses (and metrics) is the whole batch's (``PreferenceTrainer``).

    Args:
        pad_id: the tail padding token.
        pack: several segments per row (False: one per row, for virtual-token methods).
        share: compute each pair's prompt once (needs an attention kernel that takes a 4D
            boolean mask: sdpa, hybrid; False packs the two sides as separate sequences).
        pass_tokens: the largest pass in tokens (``micro_batch_tokens``); None: one pass.
    """

    def __init__(self, pad_id: int, pack: bool = True, share: bool = True,
                 pass_tokens: int | None = None):
        self.pad_id, self.pack, self.share = pad_id, pack, share and pack
        self.pass_tokens = pass_tokens

    def __call__(self, features: list[dict]) -> dict:
        n = len(features)
        if not self.pass_tokens or n < 2:
            return self._collate(features)
        sizes = [pair_tokens(f["chosen"]["input_ids"], f["chosen"]["labels"],
                             f["rejected"]["input_ids"], f["rejected"]["labels"], self.share)
                 for f in features]
        groups = token_groups(sizes, self.pass_tokens)
        if len(groups) == 1:
            return self._collate(features)
        passes = []
        for group in groups:
            part = self._collate([features[i] for i in group])
            part["pass_weight"] = torch.tensor(len(group) / n)
            passes.append(part)
        return {"passes": passes, "n_tokens": torch.tensor(sum(int(p["n_tokens"]) for p in passes))}

    def _collate(self, features: list[dict]) -> dict:
        n = len(features)
        segments = [s for i, f in enumerate(features)
                    for s in pair_segments(f["chosen"], f["rejected"], i, n, self.share)]
        batch = layout(segments, self.pad_id, 2 * n, self.pack)
        if "ref_chosen" in features[0]:
            batch["ref_logps"] = torch.tensor([f["ref_chosen"] for f in features]
                                              + [f["ref_rejected"] for f in features])
        return batch


def token_groups(sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive indices grouped so each group's sizes sum to at most ``budget`` (an item
    larger than that is a group of its own); the order is kept."""
    groups: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if groups and total + size <= budget:
            groups[-1].append(i)
            total += size
        else:
            groups.append([i])
            total = size
    return groups


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
