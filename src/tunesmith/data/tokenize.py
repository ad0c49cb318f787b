"""Conversation -> ``input_ids`` and ``labels`` (-100 outside the supervised spans).

Labels are exactly the assistant tokens of the chosen ``train_on`` strategy, each turn's
end-of-turn token included. Truncation policy: keep the first ``cutoff_len`` tokens; a row whose
supervised tokens are all cut away is dropped (and counted by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

from .conversation import Conversation, RowError
from .templates import Template

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


def supervised_turns(conv: Conversation, train_on: str) -> list[list[int]]:
    """Per sample, the assistant turn indices to label (``split_turns`` gives several samples)."""
    turns = conv.assistant_indices
    if train_on == "last_turn":
        return [turns[-1:]]
    if train_on == "split_turns":
        return [[t] for t in turns]
    return [turns]


def _label_tokens(offsets, spans, everything: bool) -> list[bool]:
    if everything:
        return [True] * len(offsets)
    mask = []
    for start, end in offsets:
        mask.append(any(s <= start < e for s, e in spans))
    return mask


def _encode_text(tokenizer, text: str):
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return enc["input_ids"], enc["offset_mapping"]


def encode_conversation(conv: Conversation, tokenizer, template: Template, *,
                        train_on: str, cutoff_len: int) -> list[Example]:
    """Tokenize one conversation into one or more examples (several with ``split_turns``)."""
    examples = []
    for turns in supervised_turns(conv, train_on):
        messages = conv.messages[: turns[-1] + 1]
        text, spans = template.assistant_spans(tokenizer, messages, turns)
        ids, offsets = _encode_text(tokenizer, text)
        mask = _label_tokens(offsets, spans, train_on == "everything")
        labels = [t if m else IGNORE for t, m in zip(ids, mask)]
        examples.append(_truncate(ids, labels, cutoff_len))
    return examples


def encode_text(conv: Conversation, tokenizer, *, cutoff_len: int) -> list[Example]:
    """Plain text for causal-LM training: labels are the inputs, EOS appended."""
    ids = tokenizer(conv.text, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    return [_truncate(ids, list(ids), cutoff_len)]


def _truncate(ids: list[int], labels: list[int], cutoff_len: int) -> Example:
    truncated = len(ids) > cutoff_len
    ids, labels = ids[:cutoff_len], labels[:cutoff_len]
    if all(lab == IGNORE for lab in labels):
        reason = "no_label_after_truncation" if truncated else "no_label"
        raise RowError(reason, f"no supervised tokens left (cutoff_len={cutoff_len})")
    return Example(ids, labels, truncated)
