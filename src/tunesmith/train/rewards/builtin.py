"""The built-in reward functions (``reward_funcs``): verifiable checks on a completion's text.

Each factory takes the stage's parameters and returns ``fn(batch) -> list[float]``, one score
per completion. Scores are in [0, 1] except ``length_penalty`` (in [-1, 0]).
"""

from __future__ import annotations

import re

from . import RewardBatch, register_reward

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")


def _answer_part(text: str, close: str = "</think>") -> str:
    """The text after the thinking block (the whole text when there is none)."""
    return text.split(close, 1)[1] if close in text else text


@register_reward("format_think", "<think>reasoning</think> then a non-empty answer (partial "
                 "credit: 0.25 for the opening tag, 0.25 for the closing tag after it, 0.5 "
                 "for an answer after the closing tag)")
def format_think(params):
    def score(batch: RewardBatch) -> list[float]:
        return [_think_score(c) for c in batch.completions]

    return score


def _think_score(text: str) -> float:
    """Partial credit makes the signal dense: a model that never writes the full shape still
    gets a group whose completions differ (GRPO learns nothing from a group of equal scores)."""
    stripped = text.strip()
    opened = stripped.find("<think>")
    if opened < 0:
        return 0.0
    score = 0.25 if opened == 0 else 0.1
    closed = stripped.find("</think>", opened + len("<think>"))
    if closed < 0:
        return score
    thought = stripped[opened + len("<think>"):closed].strip()
    score += 0.25 if thought else 0.1
    answer = stripped[closed + len("</think>"):].strip()
    return score + (0.5 if answer and "<think>" not in answer else 0.0)


def _normalize(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".!").split())


def _matches(answer_text: str, reference: str) -> bool:
    """Equal after normalizing; for a numeric reference, the last number of the answer."""
    if _normalize(answer_text) == _normalize(reference):
        return True
    ref_numbers = _NUMBER.fullmatch(reference.strip().replace(" ", ""))
    if ref_numbers is None:
        return False
    found = _NUMBER.findall(answer_text)
    return bool(found) and found[-1].replace(",", "") == reference.strip().replace(",", "")


@register_reward("exact_answer", "1 when the answer (after </think>) equals the row's "
                 "reference answer (normalized; for a numeric reference, its last number)")
def exact_answer(params):
    def score(batch: RewardBatch) -> list[float]:
        return [float(ref is not None and _matches(_answer_part(c), ref))
                for c, ref in zip(batch.completions, batch.answers)]

    return score


@register_reward("regex", "1 when the completion matches reward_regex (re.search)")
def regex(params):
    pattern = re.compile(params.reward_regex, re.DOTALL)

    def score(batch: RewardBatch) -> list[float]:
        return [float(pattern.search(c) is not None) for c in batch.completions]

    return score


@register_reward("contains", "the fraction of the reward_contains strings the completion has")
def contains(params):
    needles = list(params.reward_contains)

    def score(batch: RewardBatch) -> list[float]:
        return [sum(n in c for n in needles) / len(needles) for c in batch.completions]

    return score


@register_reward("length_penalty", "DAPO's soft overlong penalty: 0 up to max_completion_length "
                 "- length_penalty_cache tokens, then falling linearly to -1 at the limit")
def length_penalty(params):
    limit = params.max_completion_length
    cache = params.length_penalty_cache or max(limit // 4, 1)

    def score(batch: RewardBatch) -> list[float]:
        out = []
        for ids in batch.completion_ids:
            n = len(ids)
            out.append(0.0 if n <= limit - cache else max((limit - cache - n) / cache, -1.0))
        return out

    return score
