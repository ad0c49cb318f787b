"""Datasets from a config: resolve, read, convert, validate, tokenize, split.

Every dropped row is counted by reason in a DataReport; ``data_report.json`` is written with
each run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from .conversation import Conversation, RowError
from .formats import Format, convert_row, detect_format, get_format
from .readers import read_file
from .registry import DatasetSpec, resolve_dataset
from .report import DataReport
from .templates import Template
from .tokenize import Example, encode_conversation, encode_text


@dataclass
class LoadedData:
    train: list[Example]
    eval: list[Example]
    report: DataReport


def _substitute(value, placeholders: dict):
    if isinstance(value, str):
        for key, repl in placeholders.items():
            value = value.replace("{{" + key + "}}", str(repl))
        return value
    if isinstance(value, list):
        return [_substitute(v, placeholders) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, placeholders) for k, v in value.items()}
    return value


def _pick_format(spec: DatasetSpec, data_cfg, rows: list[tuple[str, object]]) -> Format:
    name = data_cfg.format if data_cfg.format != "auto" else spec.format
    if name != "auto":
        return get_format(name)
    return detect_format([r for _, r in rows], str(spec.path))


def read_conversations(data_cfg, names: list[str], report: DataReport,
                       think: tuple[str, str] = ("<think>", "</think>")) -> list[Conversation]:
    """Read, convert and validate every row of the named datasets, counting drops."""
    conversations: list[Conversation] = []
    for name in names:
        spec = resolve_dataset(name, data_cfg.dataset_dir)
        rows = list(read_file(spec.path))
        if spec.num_samples is not None:
            rows = rows[: spec.num_samples]
        if not rows:
            continue
        fmt = _pick_format(spec, data_cfg, rows)
        opts = {"columns": {**spec.columns, **(data_cfg.columns or {})}, "tags": spec.tags,
                "think": think}
        for origin, row in rows:
            report.total += 1
            if data_cfg.placeholders:
                row = _substitute(row, data_cfg.placeholders)
            try:
                conv = convert_row(fmt, row, opts)
            except RowError as err:
                report.drop(err.reason, origin, str(err))
                continue
            conv.origin = origin
            conversations.append(conv)
    return conversations


def tokenize_all(conversations: list[Conversation], tokenizer, template: Template | None,
                 data_cfg, report: DataReport) -> list[Example]:
    """Tokenize conversations, counting rows dropped for having no supervised tokens."""
    examples: list[Example] = []
    for conv in conversations:
        try:
            if conv.text is not None:
                out = encode_text(conv, tokenizer, cutoff_len=data_cfg.cutoff_len)
            else:
                out = encode_conversation(conv, tokenizer, template, train_on=data_cfg.train_on,
                                          cutoff_len=data_cfg.cutoff_len)
        except RowError as err:
            report.drop(err.reason, conv.origin, str(err))
            continue
        report.kept += 1
        report.truncated += sum(e.truncated for e in out)
        examples.extend(out)
    report.samples += len(examples)
    return examples


def split(examples: list[Example], val_size: float, seed: int) -> tuple[list, list]:
    """A seeded train/validation split; ``val_size`` is a fraction or a row count."""
    if not val_size:
        return examples, []
    n_val = int(val_size) if val_size >= 1 else max(1, round(len(examples) * val_size))
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    train = [e for i, e in enumerate(examples) if i not in val_idx]
    return train, [examples[i] for i in sorted(val_idx)]


def load_data(cfg, tokenizer, template: Template | None) -> LoadedData:
    """Train and eval examples for a run config, with the report checked against the limits."""
    from ..errors import DataError

    d = cfg.data
    if not d.dataset:
        raise DataError("no dataset: set dataset: (a file path or a name in dataset_info.json)")
    report = DataReport()
    think = (template.think_open, template.think_close) if template else ("<think>", "</think>")
    convs = read_conversations(d, d.dataset, report, think)
    if d.max_samples:
        convs = convs[: d.max_samples]
    examples = tokenize_all(convs, tokenizer, template, d, report)
    report.check(d.max_drop_ratio, d.strict)
    seed = d.data_seed if d.data_seed is not None else cfg.train.seed
    if d.eval_dataset:
        eval_report = DataReport()
        eval_convs = read_conversations(d, d.eval_dataset, eval_report, think)
        eval_examples = tokenize_all(eval_convs, tokenizer, template, d, eval_report)
        return LoadedData(examples, eval_examples, report)
    train, val = split(examples, d.val_size, seed)
    return LoadedData(train, val, report)
