"""Conversation -> ``input_ids`` and ``labels`` (-100 outside the supervised spans).

Labels are exactly the assistant tokens of the chosen ``train_on`` strategy, each turn's
end-of-turn token included. Truncation policy: keep the first ``cutoff_len`` tokens; a row whose
supervised tokens are all cut away is dropped (and counted by the caller).

Rendering is per conversation (the Jinja template finds the assistant spans); tokenization is
batched (:func:`encode_batch`): one fast-tokenizer call for many rendered texts, with offsets
mapping tokens back to the spans, so labels stay exact.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from .conversation import Conversation, RowError
from .templates import Template

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    row: int = 0  # index of the source row (split_turns gives several examples per row)
    flag: int = 0  # pairs: 1 chosen, 0 rejected; unpaired: 1 desirable, 0 undesirable


def supervised_turns(conv: Conversation, train_on: str) -> list[list[int]]:
    """Per sample, the assistant turn indices to label (``split_turns`` gives several samples)."""
    turns = conv.assistant_indices
    if train_on == "last_turn":
        return [turns[-1:]]
    if train_on == "split_turns":
        return [[t] for t in turns]
    return [turns]


def _label_mask(offsets, spans, everything: bool) -> list[bool]:
    if everything:
        return [True] * len(offsets)
    return [any(s <= start < e for s, e in spans) for start, _ in offsets]


@dataclass
class _Rendered:
    text: str
    spans: list  # character spans to label; None: label everything (plain text)
    special: bool = False  # add the tokenizer's special tokens (plain text only)


def render_samples(conv: Conversation, tokenizer, template: Template | None,
                   train_on: str) -> list[_Rendered]:
    """The text and assistant spans of each sample of one conversation."""
    if conv.text is not None:
        return [_Rendered(conv.text, None, True)]
    if template is None:
        raise RowError("not_text", "stage: pt trains on plain text rows (format: text)")
    samples = []
    for turns in supervised_turns(conv, train_on):
        messages = conv.messages[: turns[-1] + 1]
        text, spans = template.assistant_spans(tokenizer, messages, turns)
        samples.append(_Rendered(text, None if train_on == "everything" else spans))
    return samples


def crossed_boundaries(offsets, spans) -> list[int]:
    """The span edges (character positions) that fall inside one token of ``offsets``.

    A token may merge the end of the prompt with the start of the answer: SmolLM2's BPE joins
    ``>`` and ``<`` of ``<｜Assistant｜><think>`` into one ``><`` token. Labelled by its start, it
    belongs to the prompt, so the model is trained to continue with ``think>`` -- while at
    inference the prompt is tokenized alone, ends in ``>``, and the model has never learned to
    write the ``<`` that opens its answer."""
    starts = [s for s, _ in offsets]
    crossed = []
    for edge in sorted({b for span in spans for b in span}):
        i = bisect_right(starts, edge) - 1
        if i >= 0 and offsets[i][0] < edge < offsets[i][1]:
            crossed.append(edge)
    return crossed


def _split_at(tokenizer, text: str, cuts: list[int]) -> tuple[list[int], list]:
    """Tokenize ``text`` piece by piece between ``cuts``, as LLaMA-Factory encodes prompt and
    answer separately: the prompt's tokens are then those inference gives it, and the answer's
    first token is one the model learns to generate."""
    edges = [0, *cuts, len(text)]
    enc = tokenizer([text[a:b] for a, b in zip(edges, edges[1:])], add_special_tokens=False,
                    return_offsets_mapping=True)
    ids, offsets = [], []
    for a, piece_ids, piece_offsets in zip(edges, enc["input_ids"], enc["offset_mapping"]):
        ids += piece_ids
        offsets += [(s + a, e + a) for s, e in piece_offsets]
    return ids, offsets


def _tokenize(tokenizer, samples: list[_Rendered]) -> list[tuple[list[int], list]]:
    """One batched tokenizer call per kind of sample (chat or plain text); a chat sample with a
    token across a prompt/answer edge is tokenized again with the text cut there."""
    out: list = [None] * len(samples)
    for special in (False, True):
        idx = [i for i, s in enumerate(samples) if s.special == special]
        if not idx:
            continue
        enc = tokenizer([samples[i].text for i in idx], add_special_tokens=special,
                        return_offsets_mapping=True)
        for j, i in enumerate(idx):
            ids, offsets = enc["input_ids"][j], enc["offset_mapping"][j]
            cuts = crossed_boundaries(offsets, samples[i].spans) if samples[i].spans else []
            out[i] = _split_at(tokenizer, samples[i].text, cuts) if cuts else (ids, offsets)
    return out


def _example(sample: _Rendered, ids: list[int], offsets, tokenizer, cutoff_len: int) -> Example:
    if sample.special:  # plain text: labels are the inputs, EOS appended so the model stops
        if tokenizer.eos_token_id is not None:
            ids = list(ids) + [tokenizer.eos_token_id]
        return _truncate(ids, list(ids), cutoff_len)
    mask = _label_mask(offsets, sample.spans or [], sample.spans is None)
    return _truncate(ids, [t if m else IGNORE for t, m in zip(ids, mask)], cutoff_len)


def encode_batch(convs: list[Conversation], tokenizer, template: Template | None, *,
                 train_on: str, cutoff_len: int) -> list[list[Example] | RowError]:
    """Encode many conversations with one tokenizer call; a failing row gives its RowError."""
    rendered: list[list[_Rendered] | RowError] = []
    for conv in convs:
        try:
            rendered.append(render_samples(conv, tokenizer, template, train_on))
        except RowError as err:
            rendered.append(err)
    flat = [s for r in rendered if not isinstance(r, RowError) for s in r]
    encoded = iter(_tokenize(tokenizer, flat)) if flat else iter(())
    results: list[list[Example] | RowError] = []
    for r in rendered:
        if isinstance(r, RowError):
            results.append(r)
            continue
        pairs = [next(encoded) for _ in r]  # consume this row's encodings before any error
        results.append(_row_examples(r, pairs, tokenizer, cutoff_len))
    return results


def _row_examples(samples, pairs, tokenizer, cutoff_len: int) -> list[Example] | RowError:
    """A row's examples; with several samples (split_turns) only those left without any label
    are dropped, and the row fails only when all are."""
    kept, error = [], None
    for s, (ids, offs) in zip(samples, pairs):
        try:
            kept.append(_example(s, ids, offs, tokenizer, cutoff_len))
        except RowError as err:
            error = err
    return kept if kept else error


def encode_conversation(conv: Conversation, tokenizer, template: Template, *,
                        train_on: str, cutoff_len: int) -> list[Example]:
    """Tokenize one conversation into one or more examples (several with ``split_turns``)."""
    [result] = encode_batch([conv], tokenizer, template, train_on=train_on, cutoff_len=cutoff_len)
    if isinstance(result, RowError):
        raise result
    return result


def _truncate(ids: list[int], labels: list[int], cutoff_len: int) -> Example:
    truncated = len(ids) > cutoff_len
    ids, labels = ids[:cutoff_len], labels[:cutoff_len]
    if all(lab == IGNORE for lab in labels):
        reason = "no_label_after_truncation" if truncated else "no_label"
        raise RowError(reason, f"no supervised tokens left (cutoff_len={cutoff_len})")
    return Example(ids, labels, truncated)
