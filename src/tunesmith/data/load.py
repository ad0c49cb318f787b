"""Datasets from a config: resolve, read, convert, validate, tokenize, cache, split.

Every dropped row is counted by reason in a DataReport; ``data_report.json`` is written with
each run. Rows flow as a stream: read lazily (readers.py), converted one at a time and tokenized
in batches, so only the tokenized ids are ever held in memory.

``streaming: true`` additionally warns about ``.json`` arrays (JSON has no streaming form; use
JSONL). ``max_samples`` (per dataset, as in LLaMA-Factory) and per-dataset counts (``name:N`` or
``num_samples``) stop reading early. A malformed line (invalid JSON, non-UTF-8) stops the run with
``file:line``; a row with the wrong shape is skipped and counted.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..errors import DataError
from .conversation import Conversation, RowError
from .formats import Format, convert_row, detect_format, get_format
from .hub_data import cache_files, read_hub
from .mix import mix, once_then
from .preference import RECORD_CONVERTERS, detection_row, encode_records, fits_kind
from .readers import BadRow, data_files, read_file
from .registry import DatasetSpec, resolve_dataset
from .report import DataReport
from .templates import Template
from .tokenize import Example, encode_batch

if TYPE_CHECKING:
    from ..config import DataConfig, RunConfig


BATCH = 256  # conversations per tokenizer call
DETECT_ROWS = 20


@dataclass
class LoadedData:
    train: list[Example]
    eval: list[Example]
    report: DataReport
    from_cache: bool = False


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


def _columns(spec: DatasetSpec, data_cfg) -> dict:
    return {**spec.columns, **(data_cfg.columns or {})}


def _pick_format(spec: DatasetSpec, data_cfg, head: list, kind: str = "chat") -> Format:
    name = data_cfg.format if data_cfg.format != "auto" else spec.format
    if name != "auto":
        return _format_for_kind(spec, get_format(name), kind)
    rows = [r for _, r in head if not isinstance(r, BadRow)]
    if not rows:  # nothing readable to detect from: the first bad line is the error
        origin, bad = head[0]
        raise DataError(f"{origin}: {bad.message}")
    columns = _columns(spec, data_cfg)
    if kind == "pairs":  # the chosen answer in place of the response, as the chat format has it
        rows = [detection_row(r, {"columns": columns}) for r in rows]
    try:
        return _format_for_kind(spec, detect_format(rows, str(spec.path), columns), kind)
    except DataError as err:
        raise DataError(f"dataset '{spec.name}': {err}") from None


def _format_for_kind(spec: DatasetSpec, fmt: Format, kind: str) -> Format:
    if not fits_kind(fmt, kind):
        raise DataError(f"dataset '{spec.name}': format '{fmt.name}' has no chosen/rejected "
                        "answers; preference data is alpaca, sharegpt, openai or TRL's "
                        "prompt/chosen/rejected")
    return fmt


# A registry entry's kind of data (LLaMA-Factory's ranking / kto_tag flags) and the stage kinds
# that can train on it.
_ENTRY_KINDS = {"pairs": ("pairs",), "unpaired": ("unpaired",), "chat": ("chat", "text")}
_KIND_STAGES = {"pairs": "stage: dpo or rm", "unpaired": "stage: kto", "chat": "stage: sft or pt"}


def _check_entry_kind(spec: DatasetSpec, kind: str) -> None:
    entry = "pairs" if spec.ranking or spec.format == "preference" else "unpaired" if spec.kto else "chat"
    if spec.declared and kind not in _ENTRY_KINDS[entry] and kind in ("chat", "pairs", "unpaired"):
        what = {"pairs": "a preference (ranking) dataset", "unpaired": "a KTO (kto_tag) dataset",
                "chat": "not a preference dataset (no ranking: true or kto_tag)"}[entry]
        raise DataError(f"dataset '{spec.name}' is {what}: train it with {_KIND_STAGES[entry]}")


def _limit(spec: DatasetSpec, data_cfg) -> int | None:
    limits = [n for n in (spec.num_samples, data_cfg.max_samples) if n]
    return min(limits) if limits else None


def open_dataset(spec: DatasetSpec, data_cfg: DataConfig,
                 kind: str = "chat") -> tuple[Format | None, Iterator]:
    """The format and a lazy ``(origin, row)`` stream of one dataset (None format when empty)."""
    if spec.hub is not None:  # a hub dataset: rows come from datasets.load_dataset
        rows = islice(read_hub(spec.hub, streaming=data_cfg.streaming), _limit(spec, data_cfg))
    else:
        if data_cfg.streaming and any(f.suffix == ".json" for f in data_files(spec.path)):
            warnings.warn(f"{spec.path}: a .json array is parsed whole even with streaming: true; "
                          "save large datasets as JSONL", stacklevel=3)
        rows = islice(read_file(spec.path), _limit(spec, data_cfg))
    head = list(islice(rows, DETECT_ROWS))
    if not head:
        return None, iter(())
    return _pick_format(spec, data_cfg, head, kind), chain(head, rows)


@dataclass
class Source:
    """One opened dataset: its spec, format, conversion options, kind and first-pass rows."""
    spec: DatasetSpec
    fmt: Format | None
    opts: dict
    rows: Iterator
    kind: str = "chat"

    def opener(self, data_cfg: DataConfig):
        """Its rows, first the opened ones, then read again from the start (oversampling)."""
        return once_then(self.rows, lambda: open_dataset(self.spec, data_cfg, self.kind)[1])


def open_sources(data_cfg: DataConfig, names: list[str], report: DataReport,
                 think: tuple[str, str] = ("<think>", "</think>"),
                 kind: str = "chat") -> list[Source]:
    """Resolve and open every named dataset (format detected), listing it in the report."""
    sources = []
    for name in names:
        spec = resolve_dataset(name, data_cfg.dataset_dir, data_cfg.subset, data_cfg.split)
        _check_entry_kind(spec, kind)
        fmt, rows = open_dataset(spec, data_cfg, kind)
        where = spec.hub.label if spec.hub else spec.path
        report.sources.append(f"{spec.name}: {where} ({fmt.name if fmt else 'empty'})")
        if fmt is not None:
            opts = {"columns": _columns(spec, data_cfg), "tags": spec.tags, "think": think}
            sources.append(Source(spec, fmt, opts, rows, kind))
    return sources


def mixed_rows(sources: list[Source], data_cfg: DataConfig,
               seed: int = 0) -> Iterator[tuple[int, tuple]]:
    """``(source index, (origin, row))`` of every source, mixed per ``mix_strategy``."""
    return mix([s.opener(data_cfg) for s in sources], data_cfg.mix_strategy,
               data_cfg.interleave_probs, seed)


def iter_conversations(data_cfg: DataConfig, names: list[str], report: DataReport,
                       think: tuple[str, str] = ("<think>", "</think>"),
                       bad_lines: str = "raise", kind: str = "chat",
                       seed: int | None = None) -> Iterator[Conversation]:
    """Read, mix, convert and validate every row of the named datasets, counting drops.

    Args:
        bad_lines: ``raise`` (a malformed line stops with file:line) or ``count`` (it is
            dropped and counted, for ``data validate``).
        kind: the stage's data kind; ``pairs``/``unpaired`` yield Pair/Unpaired records
            (``data/preference.py``) instead of Conversations.
        seed: seed of a weighted ``interleave_probs`` draw (default: ``data_seed`` or 0).
    """
    sources = open_sources(data_cfg, names, report, think, kind)
    seed = seed if seed is not None else (data_cfg.data_seed or 0)
    for i, (origin, row) in mixed_rows(sources, data_cfg, seed):
        conv = convert(sources[i], origin, row, data_cfg, report, bad_lines)
        if conv is not None:
            yield conv


def convert(source: Source, origin, row, data_cfg: DataConfig, report, bad_lines="raise"):
    """One raw row of ``source`` as a Conversation (or preference record), or None (dropped
    and counted)."""
    fn = RECORD_CONVERTERS.get(source.kind)
    return _convert(source.fmt, origin, row, source.opts, data_cfg, report, bad_lines, fn)


def _convert(fmt, origin, row, opts, data_cfg, report, bad_lines,
             convert=None) -> Conversation | None:
    report.total += 1
    if isinstance(row, BadRow):
        if bad_lines == "raise":
            raise DataError(f"{origin}: {row.message}")
        report.drop(row.reason, origin, row.message)
        return None
    if data_cfg.placeholders:
        row = _substitute(row, data_cfg.placeholders)
    try:
        conv = (convert or (lambda f, r, o: convert_row(f, r, o)))(fmt, row, opts)
    except RowError as err:
        report.drop(err.reason, origin, str(err))
        return None
    conv.origin = origin
    for side in getattr(conv, "sides", ()):
        side.origin = origin
    return conv


def read_conversations(data_cfg: DataConfig, names: list[str], report: DataReport,
                       think: tuple[str, str] = ("<think>", "</think>")) -> list[Conversation]:
    """Every valid conversation of the named datasets, as a list."""
    return list(iter_conversations(data_cfg, names, report, think))


def _batches(items: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(items, size)):
        yield batch


def tokenize_all(conversations, tokenizer, template: Template | None, data_cfg: DataConfig,
                 report: DataReport, kind: str = "chat") -> list[Example]:
    """Tokenize conversations in batches, counting rows dropped for having no supervised tokens.

    With ``preprocessing_num_workers`` > 1 the batches are rendered and tokenized by a pool of
    processes (``parallel.py``), in order, so the examples are the same as one process makes.

    Args:
        kind: the stage's data kind (``chat``, ``text``, ``pairs``, ``unpaired``; see
            ``train/stages``).
    """
    from .parallel import encode_batches

    examples: list[Example] = []
    batches = ([c for c in b if _kind_fits(c, kind, report)]
               for b in _batches(iter(conversations), BATCH))
    for batch, results in encode_batches(batches, tokenizer, template, data_cfg, kind):
        examples.extend(count_encoded(batch, results, report, kind))
    report.samples += len(examples)
    return examples


def count_encoded(batch: list, results: list, report: DataReport, kind: str = "chat") -> list:
    """The examples of one encoded batch; failed rows are dropped and counted, kept rows numbered."""
    examples = []
    for conv, out in zip(batch, results):
        if isinstance(out, RowError):
            report.drop(out.reason, conv.origin, str(out))
            continue
        for ex in out:
            ex.row = report.kept
        report.kept += 1
        truncated = [e.truncated for e in out]
        report.truncated += any(truncated) if kind in RECORD_CONVERTERS else sum(truncated)
        examples.extend(out)
    return examples


def encode_for_kind(records: list, tokenizer, template, data_cfg: DataConfig, kind: str,
                    cutoff_len: int | None = None) -> list:
    """Examples (or the RowError) per record: conversations as SFT/pt does, preference records
    with labels on each answer (``data/preference.py``)."""
    cutoff = cutoff_len or data_cfg.cutoff_len
    if kind in RECORD_CONVERTERS:
        return encode_records(records, tokenizer, template, cutoff_len=cutoff)
    return encode_batch(records, tokenizer, template, train_on=data_cfg.train_on, cutoff_len=cutoff)


def _kind_fits(conv: Conversation, kind: str, report: DataReport) -> bool:
    if kind == "text" and conv.text is None:
        report.drop("not_text", conv.origin, "stage: pt trains on plain text rows (format: text)")
        return False
    return True


def split(examples: list[Example], val_size: float, seed: int) -> tuple[list, list]:
    """A seeded train/validation split by source row (``val_size``: fraction or row count).

    Examples of one row (``split_turns``) stay on the same side, so no conversation leaks.
    """
    if not val_size:
        return examples, []
    rows = sorted({e.row for e in examples})
    n_val = int(val_size) if val_size >= 1 else max(1, round(len(rows) * val_size))
    if n_val >= len(rows):
        raise DataError(f"val_size={val_size} leaves no training rows ({len(rows)} rows kept)")
    order = list(rows)
    random.Random(seed).shuffle(order)
    val_rows = set(order[:n_val])
    return ([e for e in examples if e.row not in val_rows],
            [e for e in examples if e.row in val_rows])


def _think(template: Template | None) -> tuple[str, str]:
    return (template.think_open, template.think_close) if template else ("<think>", "</think>")


def _settings(cfg, names: list[str], kind: str) -> dict:
    d = cfg.data
    return {"dataset": names, "dataset_dir": d.dataset_dir, "format": d.format, "columns": d.columns,
            "placeholders": d.placeholders, "cutoff_len": d.cutoff_len, "train_on": d.train_on,
            "max_samples": d.max_samples, "kind": kind, "mix_strategy": d.mix_strategy,
            "interleave_probs": d.interleave_probs,
            "mix_seed": _mix_seed(cfg) if d.interleave_probs else None,
            "subset": d.subset, "split": d.split}


def _mix_seed(cfg) -> int:
    d = cfg.data
    return d.data_seed if d.data_seed is not None else cfg.train.seed


def _dataset_files(d, names: list[str]) -> list:
    files = []
    for name in names:
        spec = resolve_dataset(name, d.dataset_dir, d.subset, d.split)
        if spec.hub is not None:  # its Arrow files (streamed: the ID and settings only)
            files += [] if d.streaming else cache_files(spec.hub)
            info = Path(d.dataset_dir) / "dataset_info.json"
        else:
            files += data_files(spec.path)
            info = spec.path.parent / "dataset_info.json"
        # the registry entry (format, columns, tags, num_samples) changes the result too
        files += [info] if info.is_file() else []
    return files


def tokenized(cfg: RunConfig, names: list[str], tokenizer, template: Template | None,
              cache_root=None, kind: str = "chat") -> tuple[list[Example], DataReport]:
    """Examples of the named datasets: from the cache when nothing changed, else built and cached."""
    from . import cache

    d = cfg.data
    if kind == "prompts":  # cheap to build; the cache holds token ids only, not messages/answers
        from .prompts import encode_prompts

        report = DataReport()
        convs = iter_conversations(d, names, report, _think(template))
        return encode_prompts(convs, tokenizer, template, d.cutoff_len, report), report
    key = cache.cache_key(_dataset_files(d, names), tokenizer, template, _settings(cfg, names, kind))
    hit = None if d.overwrite_cache else cache.load(key, cache_root)
    if hit is not None:
        hit[1].from_cache = True
        return hit
    report = DataReport()
    convs = iter_conversations(d, names, report, _think(template), kind=kind, seed=_mix_seed(cfg))
    examples = tokenize_all(convs, tokenizer, template, d, report, kind)
    if report.kept:
        cache.save(key, examples, report, cache_root)
    return examples, report


def load_data(cfg: RunConfig, tokenizer, template: Template | None, cache_root=None,
              kind: str = "chat") -> LoadedData:
    """Train and eval examples for a run config, with the report checked against the limits.

    Args:
        kind: the stage's data kind (``chat``: conversations; ``text``: plain text;
            ``prompts``: PromptExamples to generate from, ``data/prompts.py``).
    """
    d = cfg.data
    if not d.dataset:
        raise DataError("no dataset: set dataset: (a file path or a name in dataset_info.json)")
    examples, report = tokenized(cfg, d.dataset, tokenizer, template, cache_root, kind)
    report.check(d.max_drop_ratio, d.strict)
    if d.eval_dataset:
        eval_examples, eval_report = tokenized(cfg, d.eval_dataset, tokenizer, template,
                                               cache_root, kind)
        eval_report.check(d.max_drop_ratio, d.strict)
        return LoadedData(examples, eval_examples, report, report.from_cache)
    seed = d.data_seed if d.data_seed is not None else cfg.train.seed
    train, val = split(examples, d.val_size, seed)
    return LoadedData(train, val, report, report.from_cache)
