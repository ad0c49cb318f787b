"""Prompt/reference pairs for predict: the dataset (or its validation split) as chat prompts.

Rows go through the same reading, validation and tokenization checks as training, so the
validation split here is the one training held out (same rows, same seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..data.conversation import Conversation, RowError
from ..data.load import read_conversations, split
from ..data.report import DataReport
from ..data.tokenize import encode_batch
from ..errors import DataError

if TYPE_CHECKING:
    from ..config import RunConfig


# Drop reasons that mean "this row has no reference answer to compare with".
NO_ANSWER = {"missing_key", "empty_field", "no_response", "empty_response"}


@dataclass
class Sample:
    messages: list[dict]  # the prompt: system/user/assistant history up to the last user turn
    label: str  # the reference answer (the last assistant turn)
    origin: str


def to_sample(conv: Conversation) -> Sample:
    last = conv.assistant_indices[-1]
    return Sample(conv.messages[:last], conv.messages[last]["content"], conv.origin)


def _read(cfg, names: list[str], template) -> tuple[list[Conversation], DataReport]:
    report = DataReport()
    think = (template.think_open, template.think_close)
    try:
        convs = read_conversations(cfg.data, names, report, think)
    except DataError as err:
        raise DataError(f"{err} (predict needs rows with a prompt and a reference answer)") from None
    if not convs:
        _raise_no_rows(names, report)
    return convs, report


def _raise_no_rows(names: list[str], report: DataReport):
    first = "; first: " + report.details()[0] if report.details() else ""
    if report.total and set(report.dropped) <= NO_ANSWER:
        raise DataError(f"dataset {', '.join(names)} has no reference answers ({report.total} rows, "
                        f"none with an assistant answer){first}; predict scores generations "
                        "against reference answers (e.g. an 'output' field)")
    raise DataError(f"dataset {', '.join(names)}: no usable rows ({report.summary()}){first}")


def _trainable(convs: list[Conversation], tokenizer, template, data_cfg, report) -> list:
    """The conversations training would keep (so the validation split matches training's)."""
    results = encode_batch(convs, tokenizer, template, train_on=data_cfg.train_on,
                           cutoff_len=data_cfg.cutoff_len)
    kept = []
    for conv, out in zip(convs, results):
        if isinstance(out, RowError):
            report.drop(out.reason, conv.origin, str(out))
        else:
            kept.append(conv)
    return kept


@dataclass
class _Row:
    row: int  # index among kept rows, as training's split() keys them
    conv: Conversation


def load_samples(cfg: RunConfig, tokenizer, template) -> tuple[list[Sample], DataReport, str]:
    """The samples to predict on, the data report, and which split they are.

    ``eval_dataset`` when set; else the validation split when ``val_size`` is set; else the
    whole ``dataset`` (as LLaMA-Factory's ``--do_predict``); ``max_samples`` applies per dataset.
    """
    d = cfg.data
    if not d.dataset and not d.eval_dataset:
        raise DataError("no dataset: set dataset: (a file path or a name in dataset_info.json)")
    names = d.eval_dataset or d.dataset
    convs, report = _read(cfg, names, template)
    convs = [c for c in convs if c.text is None]
    if not convs:
        raise DataError("predict needs chat rows with reference answers, not plain text (stage: pt)")
    convs = _trainable(convs, tokenizer, template, d, report)
    report.kept = len(convs)
    where = f"eval_dataset {', '.join(names)}" if d.eval_dataset else f"dataset {', '.join(names)}"
    if d.val_size and not d.eval_dataset:
        seed = d.data_seed if d.data_seed is not None else cfg.train.seed
        held_out = split([_Row(i, c) for i, c in enumerate(convs)], d.val_size, seed)[1]
        convs = [r.conv for r in held_out]
        where = f"validation split (val_size={d.val_size}) of {where}"
    return [to_sample(c) for c in convs], report, where
