"""``data preview``: the first examples exactly as the model will see them.

Like LLaMA-Factory's printout (seed 004): ``input_ids``, ``inputs``, ``label_ids`` and
``labels``, where masked runs are shown as ``[-100 x N]`` so the prompt/response boundary and the
labelled end-of-turn token are visible.
"""

from __future__ import annotations

import textwrap
from itertools import islice
from typing import TYPE_CHECKING

from .conversation import RowError
from .load import encode_for_kind, iter_conversations
from .report import DataReport
from .tokenize import IGNORE, Example
from .tools import split_tools, uses_tools

if TYPE_CHECKING:
    from ..config import RunConfig


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


def _columns(left: str, right: str, width: int = 48) -> list[str]:
    """Two texts side by side, each wrapped to ``width`` (newlines shown as the template has them)."""
    def wrap(text: str) -> list[str]:
        return [piece for line in text.split("\n") for piece in (textwrap.wrap(
            line, width, replace_whitespace=False, drop_whitespace=False) or [""])]
    a, b = wrap(left), wrap(right)
    a += [""] * (len(b) - len(a))
    b += [""] * (len(a) - len(b))
    return [f"{x:<{width}} | {y}" for x, y in zip(a, b)]


def _answer(example: Example) -> tuple[int, list[int], list[int]]:
    first = next((i for i, lab in enumerate(example.labels) if lab != IGNORE), len(example.labels))
    return first, example.input_ids[first:], example.labels[first:]


def format_pair(tokenizer, chosen: Example, rejected: Example, origin: str, index: int) -> str:
    """A pair: the shared prompt once, then chosen and rejected side by side with their labels
    (masked runs as ``[-100 x N]``), then each side's ids."""
    start, _, _ = _answer(chosen)
    cut = " [truncated]" if chosen.truncated or rejected.truncated else ""
    sides = [Example(*_answer(ex)[1:]) for ex in (chosen, rejected)]
    n = [sum(lab != IGNORE for lab in ex.labels) for ex in (chosen, rejected)]
    lines = [f"=== pair {index} ({origin}){cut} ===",
             f"prompt ({start} tokens, not labelled):\n{tokenizer.decode(chosen.input_ids[:start])}",
             *_columns(f"chosen labels ({n[0]} tokens)", f"rejected labels ({n[1]} tokens)"),
             *_columns(mark_labels(tokenizer, sides[0]), mark_labels(tokenizer, sides[1]))]
    for name, ex in (("chosen", chosen), ("rejected", rejected)):
        lines += [f"{name} input_ids:\n{ex.input_ids}", f"{name} label_ids:\n{ex.labels}"]
    return "\n".join(lines + [""])


def _format_record(tokenizer, examples: list[Example], origin: str, index: int, kind: str) -> str:
    if kind == "pairs":
        return format_pair(tokenizer, examples[0], examples[1], origin, index)
    text = format_example(tokenizer, examples[0], origin, index)
    if kind == "unpaired":
        tag = "desirable" if examples[0].flag else "undesirable"
        text = text.replace(" ===\n", f" [{tag}] ===\n", 1)
    return text


def preview(cfg: RunConfig, tokenizer, template, n: int = 3,
            kind: str = "chat") -> tuple[str, DataReport]:
    """The first ``n`` examples (pairs side by side) as text; rows that fail show their error.

    Args:
        kind: the stage's data kind (``chat``, ``text``, ``pairs``, ``unpaired``).
    """
    d, report, out, shown = cfg.data, DataReport(), [], 0
    think = (template.think_open, template.think_close) if template else ("<think>", "</think>")
    records = list(islice(iter_conversations(d, d.dataset, report, think, bad_lines="count",
                                             kind=kind), n))
    results = encode_for_kind(records, tokenizer, template, d, kind)
    for record, result in zip(records, results):
        if isinstance(result, RowError):
            out.append(f"=== {record.origin}: dropped: {result} ===\n")
            continue
        if kind in ("pairs", "unpaired"):
            shown += 1
            out.append(_format_record(tokenizer, result, record.origin, shown, kind))
            continue
        for ex in result:
            shown += 1
            out.append(format_example(tokenizer, ex, record.origin, shown))
    out += [f"dropped {line}" for line in report.details()]
    note = tools_note(records, tokenizer, template)
    return "\n".join(([note, ""] if note else []) + out), report


def tools_note(records, tokenizer, template) -> str | None:
    """How tool definitions, calls and results are rendered, when the shown rows use tools."""
    messages = [getattr(r, "messages", None) or [] for r in records]
    if template is None or not any(uses_tools(*split_tools(m)) for m in messages if m):
        return None
    if template.renders_tools(tokenizer):
        return "tools: rendered by the chat template's own tool support"
    return ("tools: this chat template has no tool support; tools, calls and results are rendered "
            "as <tools>/<tool_call>/<tool_response> text (Qwen2.5/Hermes style, "
            "docs/llamafactory.md); labels cover the assistant's calls, not the tool results")
