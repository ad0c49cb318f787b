"""Text metrics for ``predict``, computed the way LLaMA-Factory reports them.

BLEU-4 and ROUGE follow LLaMA-Factory's ``ComputeSimilarity`` so numbers are comparable with
its ``predict_bleu-4`` / ``predict_rouge-*``:

- ROUGE-1/2/L: both texts are segmented into words with jieba (Chinese-aware; English splits on
  spaces and punctuation), joined with spaces and scored with ``rouge-chinese``; the F-score is
  used. An empty side scores 0.
- BLEU-4: ``nltk`` sentence BLEU (uniform 1-4-gram weights) over *characters*, smoothed with
  ``SmoothingFunction().method3``.
- Every per-sample score is x100 and rounded to 4 decimals, then averaged over samples.

``exact_match`` (stripped strings equal) and ``accuracy`` (equal after lowercasing and removing
punctuation, articles and extra spaces) are also x100 averages, and so is ``think_format``: the
share of answers that keep a reasoning model's ``<think>reasoning</think>answer`` structure.
"""

from __future__ import annotations

import logging
import re
import string
from typing import Callable

from ..errors import require
from ..registry import Registry

METRICS: Registry[Callable[[str, str], dict[str, float]]] = Registry("metric", key="metrics")
DESCRIPTION = ("BLEU-4 and ROUGE-1/2/L as LLaMA-Factory reports them: jieba word segmentation, "
               "ROUGE F-score from rouge-chinese, sentence BLEU-4 over characters with nltk "
               "smoothing method3; per-sample x100, averaged")


def register_metric(name: str):
    """Decorator registering a per-sample scorer ``(predict, label) -> {key: score}``."""
    return METRICS.register(name)


def _jieba():
    jieba = require("jieba", "metrics", "ROUGE (Chinese word segmentation)")
    jieba.setLogLevel(logging.CRITICAL)
    return jieba


@register_metric("rouge")
def rouge_scores(predict: str, label: str) -> dict[str, float]:
    """ROUGE-1/2/L F x100 on jieba-segmented words (rouge-chinese)."""
    jieba = _jieba()
    hyp = " ".join(jieba.cut(predict))
    ref = " ".join(jieba.cut(label))
    if not hyp.split() or not ref.split():
        return {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    rouge = require("rouge_chinese", "metrics", "ROUGE").Rouge()
    scores = rouge.get_scores(hyp, ref)[0]
    return {k: round(v["f"] * 100, 4) for k, v in scores.items()}


@register_metric("bleu")
def bleu_score(predict: str, label: str) -> dict[str, float]:
    """Sentence BLEU-4 x100 over characters, smoothing method3 (as LLaMA-Factory)."""
    require("nltk", "metrics", "BLEU")
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    score = sentence_bleu([list(label)], list(predict),
                          smoothing_function=SmoothingFunction().method3)
    return {"bleu-4": round(score * 100, 4)}


@register_metric("exact_match")
def exact_match(predict: str, label: str) -> dict[str, float]:
    return {"exact_match": 100.0 if predict.strip() == label.strip() else 0.0}


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation (ASCII and CJK), English articles and extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation and ch not in "，。！？；：、“”‘’（）《》")
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


@register_metric("accuracy")
def accuracy(predict: str, label: str) -> dict[str, float]:
    return {"accuracy": 100.0 if normalize_answer(predict) == normalize_answer(label) else 0.0}


# One <think> block with some reasoning in it, first, then a non-empty answer, and no second block:
# the shape a reasoning model is trained to produce (seed 001).
THINK_SHAPE = re.compile(r"\s*<think>(?P<cot>(?:(?!</?think>).)*)</think>(?P<answer>(?:(?!</?think>).)*)",
                         re.DOTALL)


@register_metric("think_format")
def think_format(predict: str, label: str) -> dict[str, float]:
    """100 when the prediction is ``<think>reasoning</think>answer`` (both parts non-empty)."""
    match = THINK_SHAPE.fullmatch(predict)
    ok = bool(match and match["cot"].strip() and match["answer"].strip())
    return {"think_format": 100.0 if ok else 0.0}


def check_metrics(names: list[str]) -> list[str]:
    """The metric names, validated; unknown -> ConfigError listing the known ones."""
    for name in names:
        METRICS.get(name)
    return list(names)


def compute_metrics(predicts: list[str], labels: list[str], names: list[str]) -> dict[str, float]:
    """Average each metric's per-sample scores over all pairs.

    Args:
        predicts: generated texts.
        labels: reference texts, same length.
        names: metric names from METRICS.
    Returns:
        ``{"bleu-4": ..., "rouge-1": ..., ...}``, each an average of x100 scores.
    """
    sums: dict[str, list[float]] = {}
    for predict, label in zip(predicts, labels, strict=True):
        for name in check_metrics(names):
            for key, value in METRICS.get(name)(predict, label).items():
                sums.setdefault(key, []).append(value)
    return {key: round(sum(values) / len(values), 4) for key, values in sums.items()}
