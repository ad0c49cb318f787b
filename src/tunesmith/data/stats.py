"""``data stats`` and ``data validate``: every row read, measured and checked.

Both tokenize without truncation so true lengths are seen; rows over ``cutoff_len`` are counted
(training truncates them, keeping the first ``cutoff_len`` tokens). Preference data is measured
per answer and checked per pair: identical chosen/rejected answers and empty sides are errors
(training drops and counts them), pairs with a side over ``cutoff_len`` are warnings (training
cuts both sides at the same place, so the shared prompt stays whole on both).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .conversation import Conversation, RowError
from .load import _batches, _think, encode_for_kind, iter_conversations, BATCH
from .report import DataReport
from .tokenize import IGNORE

if TYPE_CHECKING:
    from ..config import RunConfig


NO_CUTOFF = 1 << 30


@dataclass
class Scan:
    """What a full pass over the data found."""

    report: DataReport
    prompt_lens: list = field(default_factory=list)
    response_lens: list = field(default_factory=list)
    total_lens: list = field(default_factory=list)
    over_cutoff: list = field(default_factory=list)  # origins of rows longer than cutoff_len
    duplicates: list = field(default_factory=list)  # origins of rows equal to an earlier row


def _fingerprint(conv) -> str:
    sides = getattr(conv, "sides", [conv])
    body = [c.text if c.text is not None else c.messages for c in sides]
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def scan(cfg: RunConfig, tokenizer, template, kind: str = "chat") -> Scan:
    """Read, convert and tokenize every row (bad lines counted, not raised).

    Args:
        kind: the stage's data kind; preference records are scanned per pair/answer.
    """
    d = cfg.data
    result = Scan(DataReport(log=[]))
    seen: set[str] = set()
    convs = iter_conversations(d, d.dataset, result.report, _think(template), bad_lines="count",
                               kind=kind)
    for batch in _batches(convs, BATCH):
        encoded = encode_for_kind(batch, tokenizer, template, d, kind, cutoff_len=NO_CUTOFF)
        for conv, out in zip(batch, encoded):
            if isinstance(out, RowError):
                result.report.drop(out.reason, conv.origin, str(out))
                continue
            result.report.kept += 1
            _measure(result, conv, out, d.cutoff_len)
            key = _fingerprint(conv)
            if key in seen:
                result.duplicates.append(conv.origin)
            seen.add(key)
    return result


def _measure(result: Scan, conv: Conversation, examples, cutoff_len: int) -> None:
    for ex in examples:
        n_resp = sum(1 for lab in ex.labels if lab != IGNORE)
        result.response_lens.append(n_resp)
        result.prompt_lens.append(len(ex.input_ids) - n_resp)
        result.total_lens.append(len(ex.input_ids))
    if any(len(ex.input_ids) > cutoff_len for ex in examples):
        result.over_cutoff.append(conv.origin)


def percentiles(values: list[int]) -> dict:
    """Nearest-rank p50/p90/p99 and min/max (empty -> zeros)."""
    if not values:
        return {"min": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0}
    s = sorted(values)
    rank = lambda p: s[min(len(s) - 1, max(0, -(-p * len(s) // 100) - 1))]  # noqa: E731
    return {"min": s[0], "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": s[-1]}


def stats(cfg: RunConfig, tokenizer, template, kind: str = "chat") -> dict:
    """Rows, token length percentiles, rows over cutoff_len, duplicates, empty responses (and
    for pairs: identical chosen/rejected answers)."""
    s = scan(cfg, tokenizer, template, kind)
    r = s.report
    extra = {"same_answers": r.dropped.get("same_answers", 0)} if kind == "pairs" else {}
    return {**extra, "rows": r.total, "kept": r.kept, "dropped": r.n_dropped,
            "dropped_by_reason": dict(r.dropped), "examples": len(s.total_lens),
            "prompt_tokens": percentiles(s.prompt_lens),
            "response_tokens": percentiles(s.response_lens),
            "total_tokens": percentiles(s.total_lens),
            "cutoff_len": cfg.data.cutoff_len, "rows_over_cutoff": len(s.over_cutoff),
            "duplicates": len(s.duplicates),
            "empty_responses": r.dropped.get("empty_response", 0) + r.dropped.get("empty_field", 0),
            "sources": r.sources}


def format_stats(st: dict) -> str:
    lines = [f"rows: {st['rows']} ({st['kept']} usable, {st['dropped']} dropped"
             + (f": {st['dropped_by_reason']}" if st["dropped"] else "") + ")",
             f"examples: {st['examples']}"]
    for key in ("prompt_tokens", "response_tokens", "total_tokens"):
        p = st[key]
        lines.append(f"{key}: min {p['min']}  p50 {p['p50']}  p90 {p['p90']}  p99 {p['p99']}  max {p['max']}")
    lines += [f"rows over cutoff_len ({st['cutoff_len']}): {st['rows_over_cutoff']}",
              f"duplicate rows: {st['duplicates']}", f"empty responses: {st['empty_responses']}"]
    if "same_answers" in st:
        lines.append(f"pairs with chosen == rejected: {st['same_answers']}")
    return "\n".join(lines + [f"source: {s}" for s in st["sources"]])


def validate(cfg: RunConfig, tokenizer, template, strict: bool = False,
             kind: str = "chat") -> tuple[list[str], int]:
    """Every problem found, one line each, and the exit code (2: errors with --strict, or no
    usable row; warnings count as errors with --strict)."""
    s = scan(cfg, tokenizer, template, kind)
    r = s.report
    lines = [f"error: {line}" for line in r.log]
    lines += [f"warning: {o}: longer than cutoff_len={cfg.data.cutoff_len} (will be truncated)"
              for o in s.over_cutoff]
    lines += [f"warning: {o}: duplicate of an earlier row" for o in s.duplicates]
    n_warn = len(s.over_cutoff) + len(s.duplicates)
    lines.append(f"{r.total} rows: {r.kept} ok, {r.n_dropped} with errors, {n_warn} warnings")
    failed = r.kept == 0 or (strict and (r.n_dropped or n_warn))
    return lines, 2 if failed else 0
