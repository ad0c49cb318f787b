"""``data preview``: the first examples exactly as the model will see them.

Like LLaMA-Factory's printout (seed 004): ``input_ids``, ``inputs``, ``label_ids`` and
``labels``, where masked runs are shown as ``[-100 x N]`` so the prompt/response boundary and the
labelled end-of-turn token are visible.
"""

from __future__ import annotations

from itertools import islice

from .conversation import RowError
from .load import iter_conversations
from .report import DataReport
from .tokenize import IGNORE, Example, encode_batch


def mark_labels(tokenizer, example: Example) -> str:
    """The labels as text, each masked run replaced by ``[-100 x N]``."""
    parts, run, masked = [], [], None
    for tok, lab in zip(example.input_ids, example.labels):
        is_masked = lab == IGNORE
        if masked is not None and is_masked != masked:
            parts.append(_run_text(tokenizer, run, masked))
            run = []
        run.append(tok)
        masked = is_masked
    if run:
        parts.append(_run_text(tokenizer, run, masked))
    return "".join(parts)


def _run_text(tokenizer, ids: list[int], masked: bool) -> str:
    return f"[-100 x {len(ids)}]" if masked else tokenizer.decode(ids)


def format_example(tokenizer, example: Example, origin: str, index: int) -> str:
    return "\n".join([
        f"=== example {index} ({origin}){' [truncated]' if example.truncated else ''} ===",
        f"input_ids:\n{example.input_ids}",
        f"inputs:\n{tokenizer.decode(example.input_ids)}",
        f"label_ids:\n{example.labels}",
        f"labels:\n{mark_labels(tokenizer, example)}",
        ""])


def preview(cfg, tokenizer, template, n: int = 3) -> tuple[str, DataReport]:
    """The first ``n`` examples as text (rows that fail are shown as their error)."""
    d, report, out, shown = cfg.data, DataReport(), [], 0
    think = (template.think_open, template.think_close) if template else ("<think>", "</think>")
    convs = list(islice(iter_conversations(d, d.dataset, report, think, bad_lines="count"), n))
    results = encode_batch(convs, tokenizer, template, train_on=d.train_on, cutoff_len=d.cutoff_len)
    for conv, result in zip(convs, results):
        if isinstance(result, RowError):
            out.append(f"=== {conv.origin}: dropped: {result} ===\n")
            continue
        for ex in result:
            shown += 1
            out.append(format_example(tokenizer, ex, conv.origin, shown))
    out += [f"dropped {line}" for line in report.details()]
    return "\n".join(out), report
